//! The bus against a real Redis server (started by the tests on a free loopback port, stopped
//! after) and the in-process bus, through the same [`Bus`] calls.

mod redis_bus;
mod semantics;
mod server;
