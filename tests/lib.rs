//! Shared helpers for the end-to-end tests: find and run the real `tracebudget` binary, a
//! running `serve` (`Server`) with plain-HTTP scrapes of its `/metrics` (`Metrics`), the Python
//! tracing clients (`client_python`, `output_within`) and the JSON they print (`Json`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `tracebudget` binary under test: `$TRACEBUDGET_BIN`, or the one cargo built next to this
/// test executable (`.ci/run` builds it before the tests).
pub fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TRACEBUDGET_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-… → target/<profile>/tracebudget
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile> directory");
    let bin = profile_dir.join(format!("tracebudget{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p tracebudget` (bash .ci/run does)",
        bin.display()
    );
    bin
}

/// Runs the binary with `args`, returning its output.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run tracebudget")
}

/// The repository root (for examples and fixtures).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A fresh temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tracebudget-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// `tracebudget serve` under test, spoken to over plain HTTP/1.1.

/// A free port on 127.0.0.1 (bound, read, released: the caller binds it right after).
pub fn free_addr() -> SocketAddr {
    free_addrs(1)[0]
}

/// `n` distinct free ports on 127.0.0.1, all held until every one is picked.
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address"))
        .collect()
}

/// An HTTP response: the status, the headers (names lowercase) and the body as text.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

/// `GET path` on `addr` with a plain `TcpStream` (HTTP/1.1, `Connection: close`); reads a
/// `Content-Length`, chunked or close-delimited body.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<HttpResponse> {
    http_request(addr, "GET", path, &[], None, timeout)
}

/// `METHOD path` on `addr` with extra `headers` and an optional JSON `body`, as [`http_get`].
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    timeout: Duration,
) -> io::Result<HttpResponse> {
    match body {
        Some(b) => {
            let mut headers = headers.to_vec();
            headers.push(("Content-Type", "application/json"));
            http_send(addr, method, path, &headers, Some(b.as_bytes()), timeout)
        }
        None => http_send(addr, method, path, headers, None, timeout),
    }
}

/// `METHOD path` on `addr` with `headers` (give the `Content-Type`) and any `body` bytes
/// (`Content-Length` is added), as [`http_get`].
pub fn http_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body.unwrap_or_default());
    stream.write_all(&request)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_http_response(&raw).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn parse_http_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        headers.push((name.trim().to_ascii_lowercase(), value.to_owned()));
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let body = if chunked {
        let mut out = Vec::new();
        loop {
            let eol = body
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or("truncated chunk size")?;
            let size_text = String::from_utf8_lossy(&body[..eol]);
            let size_hex = size_text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| format!("bad chunk size {size_hex:?}"))?;
            body = &body[eol + 2..];
            if size == 0 {
                break;
            }
            if body.len() < size {
                return Err("truncated chunk".into());
            }
            out.extend_from_slice(&body[..size]);
            body = body.get(size + 2..).unwrap_or_default();
        }
        out
    } else if let Some(n) = length {
        body.get(..n).ok_or("body shorter than Content-Length")?.to_vec()
    } else {
        body.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A running `tracebudget serve --config FILE`, killed on drop. Its stdout and stderr go to
/// `FILE` with the extension `.log`; every failure message quotes them.
#[derive(Debug)]
pub struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// Starts the binary and waits (up to 30 s) until `GET /readyz` on `addr` (the config's
    /// `[server] listen`) answers 200. Panics with "serve exited: …" and its output if the
    /// process ends first.
    pub fn start(config: &Path, addr: SocketAddr) -> Server {
        Server::start_probing(config, addr, &|addr| {
            http_get(addr, "/readyz", Duration::from_secs(2)).map(|r| (r.status, r.body))
        })
    }

    /// [`Server::start`] with another readiness probe (e.g. over HTTPS): ready once `probe`
    /// answers status 200.
    pub fn start_probing(
        config: &Path,
        addr: SocketAddr,
        probe: &dyn Fn(SocketAddr) -> io::Result<(u16, String)>,
    ) -> Server {
        let log = config.with_extension("log");
        let out = File::create(&log).expect("create the server's log file");
        let err = out.try_clone().expect("clone the log file handle");
        let child = Command::new(bin())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} serve: {e}", bin().display()));
        let mut server = Server { child, addr, log };
        server.wait_ready(Duration::from_secs(30), probe);
        server
    }

    fn wait_ready(&mut self, within: Duration, probe: &dyn Fn(SocketAddr) -> io::Result<(u16, String)>) {
        let deadline = Instant::now() + within;
        loop {
            self.assert_running();
            let last = match probe(self.addr) {
                Ok((200, _)) => return,
                Ok((status, body)) => format!("HTTP {status}: {}", body.trim()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                panic!(
                    "serve is not ready: GET {}/readyz within {within:?} ({last})\n{}",
                    self.addr,
                    self.output_block()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of `/proc/PID/status` in bytes, e.g. `VmHWM` (peak RSS) or `VmRSS` (Linux only).
    pub fn proc_status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read /proc/PID/status");
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .expect("field in /proc/PID/status");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("a number of kB");
        kib * 1024
    }

    /// The API address (`[server] listen`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the process printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }

    /// The output, framed for a failure message.
    pub fn output_block(&self) -> String {
        format!(
            "--- serve's output ({}) ---\n{}--- end ---",
            self.log.display(),
            self.output()
        )
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll the serve process")
    }

    /// Panics with "serve exited: …" and its output if the process has ended.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!("serve exited: {status}\n{}", self.output_block());
        }
    }

    /// `GET path` on the API.
    pub fn get(&self, path: &str) -> io::Result<HttpResponse> {
        http_get(self.addr, path, Duration::from_secs(5))
    }

    /// Scrapes and parses `GET /metrics` (panics, with the server's output, on any failure).
    pub fn metrics(&mut self) -> Metrics {
        self.assert_running();
        let r = self
            .get("/metrics")
            .unwrap_or_else(|e| panic!("GET /metrics: {e}\n{}", self.output_block()));
        assert_eq!(r.status, 200, "GET /metrics: {}\n{}", r.body, self.output_block());
        Metrics::parse(&r.body).unwrap_or_else(|e| panic!("unparsable /metrics: {e}\n{}", r.body))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus / OpenMetrics text.

/// One sample of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape: every sample line (comments, `# EOF` and exemplars are skipped).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub samples: Vec<Sample>,
    text: String,
}

impl Metrics {
    pub fn parse(text: &str) -> Result<Metrics, String> {
        let mut samples = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            samples.push(parse_sample(line).map_err(|e| format!("line {}: {e}: {line:?}", n + 1))?);
        }
        Ok(Metrics {
            samples,
            text: text.to_owned(),
        })
    }

    /// The samples of `name` whose labels include every `(label, value)` pair given.
    pub fn matching<'a>(&'a self, name: &'a str, labels: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = &'a Sample> {
        self.samples
            .iter()
            .filter(move |s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v)))
    }

    /// The sum of the matching samples, `None` when there is none.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels).map(|s| s.value).reduce(|a, b| a + b)
    }

    /// The sum of the matching samples, 0 when there is none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// Whether any sample of `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// The sample lines whose name starts with `prefix` (for failure messages).
    pub fn lines_with_prefix(&self, prefix: &str) -> String {
        self.text
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace()).ok_or("no value")?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let end;
        loop {
            while chars.next_if(|(_, c)| *c == ',' || c.is_whitespace()).is_some() {}
            match chars.peek() {
                Some((i, '}')) => {
                    end = *i + 1;
                    break;
                }
                None => return Err("unterminated label set".into()),
                _ => {}
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key:?} has no quoted value"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err("unterminated escape".into()),
                    },
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            }
            labels.insert(key.trim().to_owned(), value);
        }
        rest = &after[end..];
    }
    let value_text = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value_text {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(Sample { name, labels, value })
}

// ---------------------------------------------------------------------------------------------
// JSON (what the client scripts print), without a dependency.

/// A JSON value; objects keep their order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing characters at byte {}", p.i));
        }
        Ok(v)
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows `path` through nested objects.
    pub fn at(&self, path: &[&str]) -> Option<&Json> {
        path.iter().try_fold(self, |v, k| v.get(k))
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Arr(a) => Some(a),
            _ => None,
        }
    }

    /// The number at `path`; panics naming the path when it is missing.
    pub fn num(&self, path: &[&str]) -> f64 {
        self.at(path)
            .and_then(Json::as_f64)
            .unwrap_or_else(|| panic!("no number at {} in {self:?}", path.join(".")))
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            None => self.err("unexpected end"),
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.eat("}") {
                    return Ok(Json::Obj(members));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    if !self.eat(":") {
                        return self.err("expected ':'");
                    }
                    members.push((key, self.value()?));
                    self.ws();
                    if self.eat("}") {
                        return Ok(Json::Obj(members));
                    }
                    if !self.eat(",") {
                        return self.err("expected ',' or '}'");
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    if self.eat("]") {
                        return Ok(Json::Arr(items));
                    }
                    if !self.eat(",") {
                        return self.err("expected ',' or ']'");
                    }
                }
            }
            Some(b'"') => self.string().map(Json::Str),
            Some(_) if self.eat("true") => Ok(Json::Bool(true)),
            Some(_) if self.eat("false") => Ok(Json::Bool(false)),
            Some(_) if self.eat("null") => Ok(Json::Null),
            Some(_) => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
                match text.parse::<f64>() {
                    Ok(n) if !text.is_empty() => Ok(Json::Num(n)),
                    _ => {
                        self.i = start;
                        self.err("unexpected character")
                    }
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.s.get(self.i..self.i + 4).ok_or("truncated \\u escape")?;
        let n = u32::from_str_radix(std::str::from_utf8(digits).unwrap_or("x"), 16)
            .map_err(|_| format!("bad \\u escape at byte {}", self.i))?;
        self.i += 4;
        Ok(n)
    }

    fn string(&mut self) -> Result<String, String> {
        if !self.eat("\"") {
            return self.err("expected a string");
        }
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return self.err("unterminated escape");
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) && self.eat("\\u") {
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF)
                            } else {
                                hi
                            };
                            char::from_u32(code).unwrap_or('\u{FFFD}')
                        }
                        _ => return self.err("bad escape"),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes with a deadline, and the Python tracing clients.

/// Runs `cmd` to completion, capturing stdout and stderr; kills it and panics (quoting what it
/// printed) if it takes longer than `within`.
pub fn output_within(cmd: &mut Command, within: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let err = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out.join().unwrap_or_default();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "{cmd:?} did not finish within {within:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// The tracing client scripts (`tests/clients/`).
pub fn clients_dir() -> PathBuf {
    repo_root().join("tests/clients")
}

/// The Python interpreter that has the tracing clients installed: `$TRACEBUDGET_PYTHON`, or
/// whatever `.ci/setup-python.sh` prints (it creates the virtualenv on first use, pinned by
/// `tests/clients/requirements.txt`). A missing interpreter is a test failure, never a skip —
/// under `CI=true` as everywhere else.
pub fn client_python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    from_env_or_setup(
        &PYTHON,
        "TRACEBUDGET_PYTHON",
        ".ci/setup-python.sh",
        "no Python with the tracing clients",
        "the tracing clients are required, a missing interpreter fails the run",
        "`bash .ci/run` (or `bash .ci/setup-python.sh`) installs them",
        Duration::from_secs(900),
    )
}

/// A tool the tests need: the path in `env` (which must exist), else the last line a setup
/// script prints (it installs the tool on first use); found once per test process. Missing, it
/// panics with `what`, the script's output and a hint (`ci_hint` under `CI=true`) — a failure,
/// never a skip.
fn from_env_or_setup(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    env: &str,
    script: &str,
    what: &str,
    ci_hint: &str,
    local_hint: &str,
    within: Duration,
) -> PathBuf {
    let found = cell.get_or_init(|| {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let hint = if ci {
            format!("CI=true: {ci_hint}")
        } else {
            local_hint.to_owned()
        };
        if let Some(p) = std::env::var_os(env) {
            let p = PathBuf::from(p);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(format!("{env}={} does not exist ({hint})", p.display()))
            };
        }
        let script = repo_root().join(script);
        let out = output_within(Command::new("bash").arg(&script), within);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let path = stdout.lines().rev().find(|l| !l.trim().is_empty()).map(str::trim);
        match path {
            Some(p) if out.status.success() && Path::new(p).is_file() => Ok(PathBuf::from(p)),
            _ => Err(format!(
                "{what}: `bash {}` failed ({}) ({hint})\n--- its output ---\n{stdout}{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    });
    match found {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_and_openmetrics_samples() {
        let m = Metrics::parse(
            "# HELP a_total x\n# TYPE a counter\na_total{receiver=\"otlp_http\",reason=\"say \\\"hi\\\"\\n\"} 3\n\
             a_total{receiver=\"zipkin\"} 4.5 # {trace_id=\"ab\"} 1.0 1700000000\nb 7\nc{} +Inf\n# EOF\n",
        )
        .unwrap();
        assert_eq!(m.samples.len(), 4);
        assert_eq!(m.get("a_total", &[("reason", "say \"hi\"\n")]), Some(3.0));
        assert_eq!(m.sum("a_total", &[]), 7.5);
        assert_eq!(m.get("a_total", &[("receiver", "otlp_grpc")]), None);
        assert_eq!(m.sum("b", &[]), 7.0);
        assert_eq!(m.sum("c", &[]), f64::INFINITY);
        assert!(Metrics::parse("x{a=\"1\" 2").is_err());
    }

    #[test]
    fn json_values() {
        let v = Json::parse(r#" {"a": {"b": [1, -2.5e1, true, null]}, "s": "x\"\u00e9\ud83d\ude00\n"} "#).unwrap();
        assert_eq!(v.at(&["a", "b"]).and_then(Json::as_array).map(<[Json]>::len), Some(4));
        assert_eq!(v.at(&["a", "b"]).unwrap().as_array().unwrap()[1], Json::Num(-25.0));
        assert_eq!(v.get("s").and_then(Json::as_str), Some("x\"é😀\n"));
        assert!(Json::parse("{\"a\": 1,}").is_err());
        assert!(Json::parse("[1] 2").is_err());
    }

    #[test]
    fn http_bodies() {
        let r = parse_http_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "abcde"));
        let r = parse_http_response(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\nnoXX").unwrap();
        assert_eq!((r.status, r.body.as_str()), (503, "no"));
    }
}

// ---------------------------------------------------------------------------------------------
// The example config, loadgen and waiting on /metrics.

/// The example config with this test's ports, a short `trace_idle` and its SQLite file in `dir`.
pub fn example_config(
    dir: &TempDir,
    api: SocketAddr,
    grpc: SocketAddr,
    http: SocketAddr,
    zipkin: SocketAddr,
) -> PathBuf {
    let db = format!("sqlite://{}", dir.path().join("tracebudget.db").display());
    example_config_with(dir, [api, grpc, http, zipkin], &db, &[])
}

/// The example config with these ports (API, gRPC, HTTP, Zipkin), storage URL and further
/// `(from, to)` replacements of its text; `trace_idle` is 1 s.
pub fn example_config_with(dir: &TempDir, ports: [SocketAddr; 4], storage: &str, replace: &[(&str, &str)]) -> PathBuf {
    let [api, grpc, http, zipkin] = ports;
    let mut text = std::fs::read_to_string(repo_root().join("examples/tracebudget.toml"))
        .expect("example config")
        .replace("listen = \"127.0.0.1:8080\"", &format!("listen = \"{api}\""))
        .replace("otlp_grpc = \"0.0.0.0:4317\"", &format!("otlp_grpc = \"{grpc}\""))
        .replace("otlp_http = \"0.0.0.0:4318\"", &format!("otlp_http = \"{http}\""))
        .replace("zipkin = \"0.0.0.0:9411\"", &format!("zipkin = \"{zipkin}\""))
        .replace("trace_idle = \"30s\"", "trace_idle = \"1s\"")
        .replace("url = \"sqlite://tracebudget.db\"", &format!("url = \"{storage}\""));
    for (from, to) in replace {
        assert!(text.contains(from), "the example config has no {from:?}");
        text = text.replace(from, to);
    }
    assert!(
        text.contains(&format!("\"{api}\"")) && text.contains("\"1s\"") && text.contains(storage),
        "the example config changed shape"
    );
    dir.write("tracebudget.toml", &text)
}

/// Runs `tracebudget loadgen ARGS` to its end (within `within`) and parses its tally.
pub fn loadgen(args: &[&str], within: Duration) -> Json {
    let out = output_within(Command::new(bin()).arg("loadgen").args(args), within);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadgen failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Json::parse(stdout.trim()).unwrap_or_else(|e| panic!("loadgen printed no JSON ({e}):\n{stdout}"))
}

/// Polls /metrics until `done` holds or the deadline passes; returns the last scrape.
pub fn wait_for(server: &mut Server, within: Duration, done: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + within;
    loop {
        let m = server.metrics();
        if done(&m) || Instant::now() >= deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Server {
    /// Sends `signal` (e.g. `TERM`, `KILL`) and waits up to `within` for the process to end.
    /// Sends `kill -SIGNAL` to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    pub fn signal_and_wait(&mut self, signal: &str, within: Duration) -> ExitStatus {
        self.signal(signal);
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop within {within:?} of SIG{signal}\n{}",
                self.output_block()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL.

/// The PostgreSQL server the tests use (`TRACEBUDGET_TEST_POSTGRES`, default
/// `postgres://postgres@127.0.0.1:5432/test`), which `bash .ci/run` starts.
pub fn postgres_admin_url() -> String {
    std::env::var("TRACEBUDGET_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Runs one statement with `psql` against `url`; panics with psql's message on failure (so a
/// missing PostgreSQL fails the test).
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql ({e}); `bash .ci/run` installs PostgreSQL"));
    assert!(
        out.status.success(),
        "psql {sql:?} on {url}: {}; `bash .ci/run` starts PostgreSQL",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh database on the test PostgreSQL server, dropped on drop.
#[derive(Debug)]
pub struct PgDatabase {
    pub url: String,
    name: String,
}

impl PgDatabase {
    pub fn new(tag: &str) -> PgDatabase {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "tracebudget_e2e_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let admin = postgres_admin_url();
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let (base, _) = admin.rsplit_once('/').expect("a database URL");
        PgDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &postgres_admin_url(),
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// A PostgreSQL server of this test's own (initdb in a temporary directory, a free port), so a
/// test can stop and start it without disturbing others. Run as the `postgres` user when the
/// tests run as root (PostgreSQL refuses root). Stopped and removed on drop.
#[derive(Debug)]
pub struct PrivatePostgres {
    pub port: u16,
    data: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

impl PrivatePostgres {
    pub fn start(tag: &str) -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries under /usr/lib/postgresql (bash .ci/run installs them)")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb under /usr/lib/postgresql/*/bin");
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let data = std::env::temp_dir().join(format!("tracebudget-pg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).unwrap();
        let pg = PrivatePostgres {
            port: free_addr().port(),
            data,
            bin,
            as_postgres,
        };
        if as_postgres {
            let ok = Command::new("chown")
                .args(["postgres:postgres", pg.data.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(ok.success(), "chown the private PostgreSQL directory");
        }
        pg.run(
            "initdb",
            &[
                "-D",
                pg.data.join("db").to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.up();
        pg
    }

    fn command(&self, tool: &str) -> Command {
        let tool = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&tool);
            c
        } else {
            Command::new(&tool)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self.command(tool).args(args).output().expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn up(&self) {
        let db = self.data.join("db");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                db.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                self.data.join("log").to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once (`-m fast`: open connections are cut).
    pub fn down(&self) {
        self.run(
            "pg_ctl",
            &["-D", self.data.join("db").to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let db = self.data.join("db");
        let _ = self
            .command("pg_ctl")
            .args(["-D", db.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// One request a webhook sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A real HTTP server on a loopback port that answers every request 200 and keeps what it got:
/// the receiving end of webhook notifications. Stops with the value.
#[derive(Debug)]
pub struct WebhookSink {
    pub addr: SocketAddr,
    received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WebhookSink {
    pub fn start(addr: SocketAddr) -> io::Result<WebhookSink> {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn({
            let received = received.clone();
            let stop = stop.clone();
            move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if let Some(r) = serve_one(stream) {
                                received.lock().unwrap().push(r);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            }
        });
        Ok(WebhookSink {
            addr,
            received,
            stop,
            thread: Some(thread),
        })
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one HTTP/1.1 request (Content-Length body) and answers 200, closing the connection.
fn serve_one(mut stream: std::net::TcpStream) -> Option<Received> {
    use std::io::{Read, Write};
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..(head_end + len).min(buf.len())]).to_string();
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .ok()?;
    Some(Received { path, headers, body })
}

// ---------------------------------------------------------------------------------------------
// Chromium's WebDriver, for the dashboard tests.

/// Debian's `chromedriver`: `$TRACEBUDGET_CHROMEDRIVER`, or whatever `.ci/setup-chromium.sh`
/// prints (it installs `chromium` and `chromium-driver` on first use). A missing driver is a test
/// failure, never a skip — under `CI=true` as everywhere else.
pub fn chromedriver() -> PathBuf {
    static DRIVER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    from_env_or_setup(
        &DRIVER,
        "TRACEBUDGET_CHROMEDRIVER",
        ".ci/setup-chromium.sh",
        "no chromedriver",
        "the browser tests are required, a missing chromedriver fails the run",
        "`bash .ci/run` (or `bash .ci/setup-chromium.sh`, as root) installs it",
        Duration::from_secs(1200),
    )
}
