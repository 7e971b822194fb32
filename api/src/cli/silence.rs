//! `tracebudget silence add|list|expire`: the silences of a running server, through its API
//! (like Alertmanager's `amtool silence`).

use anyhow::{Context, bail};
use clap::{Args as ClapArgs, Subcommand};
use serde_json::{Value, json};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Base URL of the server's API.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8080",
        env = "TRACEBUDGET_URL"
    )]
    pub url: String,
    /// Bearer token for writes (`server.api_token`).
    #[arg(long, global = true, env = "TRACEBUDGET_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Silence the alerts matching every matcher, e.g. `silence add 'slo = checkout-latency'
    /// --duration 2h --comment "failover drill"`.
    Add {
        /// Label matchers (`name OP value`, OP one of = != =~ !~).
        #[arg(required = true)]
        matchers: Vec<String>,
        /// How long from now (or from --starts-at), e.g. `90m`, `2h`.
        #[arg(long, default_value = "1h")]
        duration: String,
        /// RFC 3339 start; default now.
        #[arg(long)]
        starts_at: Option<String>,
        /// Why.
        #[arg(long)]
        comment: String,
        /// Who; default user@host.
        #[arg(long)]
        author: Option<String>,
    },
    /// List silences (id, state, ends, matchers, author, comment).
    List,
    /// End a silence now.
    Expire { id: String },
}

/// `tracebudget silence`: one request to the server's API, its answer printed.
pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(async move {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().build().context("build the HTTP client")?;
        let base = args.url.trim_end_matches('/');
        let with_token = |r: reqwest::RequestBuilder| match &args.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        };
        match args.command {
            Command::Add {
                matchers,
                duration,
                starts_at,
                comment,
                author,
            } => {
                let mut body = json!({
                    "matchers": matchers,
                    "duration": duration,
                    "comment": comment,
                    "created_by": author.unwrap_or_else(tracebudget_engine::store::db::local_actor),
                });
                if let Some(s) = starts_at {
                    body["starts_at"] = json!(s);
                }
                let v = send(with_token(client.post(format!("{base}/api/v1/silences")).json(&body))).await?;
                println!("{}", v["id"].as_str().unwrap_or_default());
            }
            Command::List => {
                let v = send(with_token(client.get(format!("{base}/api/v1/silences")))).await?;
                println!(
                    "{:<32}  {:<8}  {:<24}  {:<16}  MATCHERS / COMMENT",
                    "ID", "STATE", "ENDS", "BY"
                );
                for s in v["silences"].as_array().into_iter().flatten() {
                    let matchers: Vec<&str> = s["matchers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    println!(
                        "{:<32}  {:<8}  {:<24}  {:<16}  {} / {}",
                        s["id"].as_str().unwrap_or_default(),
                        s["state"].as_str().unwrap_or_default(),
                        s["ends_at"].as_str().unwrap_or_default(),
                        s["created_by"].as_str().unwrap_or_default(),
                        matchers.join(", "),
                        s["comment"].as_str().unwrap_or_default(),
                    );
                }
            }
            Command::Expire { id } => {
                send(with_token(client.delete(format!("{base}/api/v1/silences/{id}")))).await?;
                println!("expired {id}");
            }
        }
        Ok(())
    })
}

async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.send().await.context("cannot reach the server")?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["error"].as_str().unwrap_or("no error message");
        bail!("the server answered {status}: {message}");
    }
    Ok(body)
}
