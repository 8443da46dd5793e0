//! The bus against a real Redis server (started by the tests on a free loopback port, stopped
//! after) and the in-process bus, through the same [`Bus`] calls.

mod redis_bus;
mod semantics;

/// A plain connection, for what the bus itself never does (writing garbage, reading blobs).
pub fn raw(server: &morphogen_testkit::RedisServer) -> redis::Connection {
    redis::Client::open(server.url()).unwrap().get_connection().unwrap()
}
