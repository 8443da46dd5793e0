//! A throwaway `redis-server` for tests that need a real Redis.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` on a loopback port, without persistence; killed on drop.
pub struct RedisServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl RedisServer {
    /// Starts a server on a free port (`redis-server` must be installed: Debian's package).
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self::on(port)
    }

    /// Starts a server on `port` and waits until it answers.
    pub fn on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        Self::listening(child, port)
    }

    /// `child`, once something listens on `port`.
    fn listening(child: Child, port: u16) -> Self {
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {port} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A `redis-server` that speaks only TLS, with a password, on a loopback port: its certificate
/// is signed by a throwaway certificate authority made with the `openssl` command.
pub struct TlsRedisServer {
    server: RedisServer,
    /// The certificate authority's PEM file, to trust in clients.
    pub ca_file: std::path::PathBuf,
    /// The password clients must give.
    pub password: &'static str,
}

impl TlsRedisServer {
    /// Makes the certificates under `dir` and starts the server.
    pub fn start(dir: &std::path::Path) -> Self {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let one_day = ["-days", "1"];
        openssl(
            &[
                &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt"][..],
                &one_day,
                &["-subj", "/CN=morphogen test CA"],
            ]
            .concat(),
        );
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        openssl(
            &[
                &["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"][..],
                &["-out", "server.crt", "-extfile", "san.ext"],
                &one_day,
            ]
            .concat(),
        );
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let password = "tls-s3cret";
        let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--tls-cert-file", &path("server.crt"), "--tls-key-file", &path("server.key")])
            .args(["--tls-ca-cert-file", &path("ca.crt"), "--tls-auth-clients", "no"])
            .args(["--requirepass", password, "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let server = RedisServer::listening(child, port);
        Self { server, ca_file: dir.join("ca.crt"), password }
    }

    /// `rediss://:<password>@127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("rediss://:{}@127.0.0.1:{}", self.password, self.server.port)
    }
}
