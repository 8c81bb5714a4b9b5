//! [`AccessPolicy`]: Azure's data access policies, applied by the gateway as real ACL rules on redis-server.
//!
//! Azure never gives an application `+@all`: access to a cache is granted per principal (the token's `oid`) by a
//! *data access policy*, which is a Redis ACL rule string. The gateway creates one ACL user per principal on its
//! redis-server (`ACL SETUSER <oid> reset on ><password> <rules>`) the first time a valid token for it arrives, and
//! authenticates that connection to redis-server as that user, so redis-server itself answers `-NOPERM` to every
//! command the policy refuses, with its own error text, exactly as Azure does.
//!
//! | policy | rules (Azure's) |
//! |---|---|
//! | [`AccessPolicy::DataOwner`] | `+@all allkeys` |
//! | [`AccessPolicy::DataContributor`] | `+@all -@dangerous +cluster\|info +cluster\|nodes +cluster\|slots allkeys` |
//! | [`AccessPolicy::DataReader`] | `+@read +@connection +cluster\|info +cluster\|nodes +cluster\|slots allkeys` |
//! | [`AccessPolicy::Custom`] | any rule string |
//!
//! Every built-in policy also gets `allchannels`: Azure's caches let every principal use pub/sub channels (their
//! servers run with the Redis 6 default `acl-pubsub-default allchannels`), while redis-server 7 defaults to
//! `resetchannels`, which would refuse every `SUBSCRIBE`. Whether a *command* may subscribe is still up to the
//! policy (`@pubsub` is not in Data Reader). A [`AccessPolicy::Custom`] rule string is applied as given.
//!
//! Under Data Contributor every `@dangerous` command is refused: `CLIENT UNBLOCK`, `CLIENT LIST`, `CLIENT KILL`,
//! `INFO`, `KEYS`, `MONITOR`, `CONFIG`, `DEBUG`, ... Under Data Reader writes, pub/sub and `BLPOP` are refused, but
//! `CLIENT UNBLOCK` is allowed (it is in `@connection`).

use std::fmt;

/// The rules every built-in policy ends with: all channels (see the module docs).
const CHANNELS: &str = "allchannels";

/// One of Azure's data access policies, or a custom rule string. The default is [`AccessPolicy::DataContributor`],
/// the one most applications are given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AccessPolicy {
    /// `+@all allkeys`: every command.
    DataOwner,
    /// `+@all -@dangerous +cluster|info +cluster|nodes +cluster|slots allkeys`: the usual one for applications.
    #[default]
    DataContributor,
    /// `+@read +@connection +cluster|info +cluster|nodes +cluster|slots allkeys`: reads only.
    DataReader,
    /// Any Redis ACL rule string, e.g. Data Contributor plus `+client|unblock`. Applied after `reset on`, as given
    /// (add `allchannels` yourself if the principal subscribes).
    Custom(String),
}

impl AccessPolicy {
    /// Data Contributor plus `+client|unblock`: the custom policy that lets an adapter interrupt blocked commands.
    pub fn data_contributor_with_unblock() -> Self {
        Self::Custom(format!(
            "{} {CHANNELS} +client|unblock",
            Self::DataContributor.azure_rules()
        ))
    }

    /// The policy's rules as Azure writes them (without the `allchannels` the harness adds to built-in policies).
    pub fn azure_rules(&self) -> &str {
        match self {
            Self::DataOwner => "+@all allkeys",
            Self::DataContributor => {
                "+@all -@dangerous +cluster|info +cluster|nodes +cluster|slots allkeys"
            }
            Self::DataReader => {
                "+@read +@connection +cluster|info +cluster|nodes +cluster|slots allkeys"
            }
            Self::Custom(rules) => rules,
        }
    }

    /// The ACL rules the gateway applies to each principal, one per `ACL SETUSER` argument.
    pub fn acl_rules(&self) -> Vec<String> {
        let mut rules: Vec<String> = self
            .azure_rules()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !matches!(self, Self::Custom(_)) {
            rules.push(CHANNELS.to_owned());
        }
        rules
    }

    /// The policy's name in Azure (`Data Owner`, ...), or `custom`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::DataOwner => "Data Owner",
            Self::DataContributor => "Data Contributor",
            Self::DataReader => "Data Reader",
            Self::Custom(_) => "custom",
        }
    }
}

impl fmt::Display for AccessPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (`{}`)", self.name(), self.azure_rules())
    }
}

/// The ACL user name for a principal: its `oid` when that is a plain name (letters, digits, `-`, `_`, `.`, `@`),
/// as Azure names it; otherwise `entraid-` and the oid's bytes in hex, so any `oid` maps to a valid, distinct user.
pub(crate) fn acl_user(oid: &str) -> String {
    let plain = !oid.is_empty()
        && oid.len() <= 128
        && oid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if plain {
        oid.to_owned()
    } else {
        let mut name = String::from("entraid-");
        for b in oid.bytes() {
            name.push_str(&format!("{b:02x}"));
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_policies_are_azures_rules_plus_channels() {
        assert_eq!(
            AccessPolicy::DataContributor.acl_rules(),
            [
                "+@all",
                "-@dangerous",
                "+cluster|info",
                "+cluster|nodes",
                "+cluster|slots",
                "allkeys",
                "allchannels"
            ]
        );
        assert_eq!(
            AccessPolicy::DataOwner.acl_rules(),
            ["+@all", "allkeys", "allchannels"]
        );
        assert_eq!(AccessPolicy::default(), AccessPolicy::DataContributor);
        assert_eq!(
            AccessPolicy::Custom("+get allkeys".into()).acl_rules(),
            ["+get", "allkeys"]
        );
        assert!(
            AccessPolicy::data_contributor_with_unblock()
                .acl_rules()
                .contains(&"+client|unblock".to_owned())
        );
    }

    #[test]
    fn acl_user_names_are_valid_and_distinct() {
        assert_eq!(
            acl_user("9a3c1f0e-0000-4c1e-8f00-123456789abc"),
            "9a3c1f0e-0000-4c1e-8f00-123456789abc"
        );
        assert_eq!(acl_user("a b"), "entraid-612062");
        assert_eq!(acl_user(""), "entraid-");
        assert_ne!(acl_user("a b"), acl_user("a_b"));
    }
}
