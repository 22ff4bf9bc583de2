//! A real DNS server on loopback (Debian's dnsmasq) serving the test zones:
//! TXT records for SPF, DKIM and DMARC, NXDOMAIN for every other name under
//! `.example`, and, for the domains in `unreachable`, a forward to a server
//! that never answers (DNS trouble, as a resolver sees it: a timeout).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Dns {
    child: Child,
    pub addr: SocketAddr,
}

impl Dns {
    pub fn start(txt: &[(&str, &str)], unreachable: &[&str]) -> Dns {
        let port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--user=root",
            "--pid-file=",
            "--log-facility=-",
            "--local=/example/",
        ])
        .arg(format!("--port={port}"));
        for (name, text) in txt {
            // On its command line, dnsmasq takes quotes literally and splits at commas.
            assert!(!text.contains(','), "TXT {name}: a comma would split the record");
            cmd.arg(format!("--txt-record={name},{text}"));
        }
        // Nothing listens on the discard port: queries for these domains time out.
        for d in unreachable {
            cmd.arg(format!("--server=/{d}/127.0.0.1#9"));
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dnsmasq (scripts/install-deps.sh installs it): {e}"));
        let dns = Dns { child, addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)) };
        dns.wait_ready();
        dns
    }

    /// Waits until the server answers a query.
    fn wait_ready(&self) {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        // A TXT query for `ready.example`.
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ["ready", "example"] {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 16, 0, 1]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let _ = sock.send_to(&q, self.addr);
            let mut buf = [0u8; 512];
            if sock.recv_from(&mut buf).is_ok() {
                return;
            }
        }
        panic!("dnsmasq on {} did not answer within 10 s", self.addr);
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
