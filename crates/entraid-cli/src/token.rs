//! `entraid token`: acquire one token and print who it is for (`oid`, `tid`, `aud`), when it expires and which
//! credential produced it; the token itself only with `--show-token`.

use clap::Args;
use entraid_core::Error;
use serde_json::json;

use crate::credential::{CredentialArgs, TokenInfo, relative, utc};
use crate::exit::{self, Exit};
use crate::hints;

/// `entraid token` options.
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    pub(crate) credential: CredentialArgs,
    /// Print the access token too (it is a password for Redis: keep it out of logs).
    #[arg(long)]
    pub(crate) show_token: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The exit status for an identity error.
pub(crate) fn identity_exit(error: &Error) -> Exit {
    if error.is_unavailable() {
        exit::NO_CREDENTIAL
    } else {
        exit::AUTHENTICATION_FAILED
    }
}

pub(crate) async fn run(args: TokenArgs) -> Exit {
    let result = match args.credential.build() {
        Ok(credential) => credential
            .token()
            .await
            .map(|info| (info, credential.winner())),
        Err(e) => Err(e),
    };
    match result {
        Ok((info, winner)) => {
            print(&args, &info, &winner);
            if !info.audience_is_redis() && !args.json {
                eprintln!("warning: {}", hints::wrong_audience(info.aud.as_deref()));
            }
            exit::OK
        }
        Err(error) => {
            let hint = hints::for_identity_error(&error);
            if args.json {
                println!(
                    "{}",
                    json!({
                        "ok": false,
                        "error": error.to_string(),
                        "unavailable": error.is_unavailable(),
                        "aadsts": error.entra_error().map(|e| e.error_codes.clone()).unwrap_or_default(),
                        "hint": hint,
                    })
                );
            } else {
                eprintln!("entraid token: {error}");
                if let Some(hint) = hint {
                    eprintln!("hint: {hint}");
                }
            }
            identity_exit(&error)
        }
    }
}

fn print(args: &TokenArgs, info: &TokenInfo, winner: &str) {
    let expires_in = info.expires_in();
    if args.json {
        let mut value = json!({
            "ok": true,
            "credential": winner,
            "oid": info.oid,
            "tid": info.tid,
            "aud": info.aud,
            "audience_ok": info.audience_is_redis(),
            "iat": info.iat,
            "expires_on": info.expires,
            "expires_on_utc": utc(info.expires),
            "expires_in_seconds": expires_in,
        });
        if args.show_token {
            value["access_token"] = json!(info.token.access_token().expose_secret());
        }
        println!("{value}");
    } else {
        println!("credential: {winner}");
        println!("oid:        {}  (the Redis username)", info.oid);
        println!("tid:        {}", info.tid.as_deref().unwrap_or("-"));
        println!("aud:        {}", info.aud.as_deref().unwrap_or("-"));
        println!(
            "expires:    {} ({})",
            utc(info.expires),
            relative(expires_in)
        );
        if args.show_token {
            println!("token:      {}", info.token.access_token().expose_secret());
        }
    }
}
