//! What an API key may do: everything (`All`, the default) or a restricted subset of
//! `inference`, `keys:read` and `keys:write`. Shared by the server and the browser.

use serde::{Deserialize, Serialize};

/// One permission an endpoint can require.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Permission {
    /// `POST /v1/chat/completions`, `GET /v1/models`.
    #[serde(rename = "inference")]
    Inference,
    /// `GET /v1/keys`.
    #[serde(rename = "keys:read")]
    KeysRead,
    /// `POST /v1/keys`, `DELETE /v1/keys/{id}`.
    #[serde(rename = "keys:write")]
    KeysWrite,
}

impl Permission {
    /// Every permission, in display order.
    pub const ALL: [Permission; 3] = [Permission::Inference, Permission::KeysRead, Permission::KeysWrite];

    /// The wire name (`inference`, `keys:read`, `keys:write`).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Inference => "inference",
            Permission::KeysRead => "keys:read",
            Permission::KeysWrite => "keys:write",
        }
    }

    /// A short human description for the portal.
    pub fn describe(self) -> &'static str {
        match self {
            Permission::Inference => "Chat completions and models",
            Permission::KeysRead => "List API keys",
            Permission::KeysWrite => "Create and revoke API keys",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Permission::Inference => 1,
            Permission::KeysRead => 2,
            Permission::KeysWrite => 4,
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// A key's permissions: all of them, or a restricted set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Permissions {
    /// Every permission, including any added in the future.
    #[default]
    All,
    /// Only these (a bit set; may be empty).
    Restricted(u8),
}

impl Permissions {
    /// A restricted set holding exactly `perms`.
    pub fn restricted(perms: impl IntoIterator<Item = Permission>) -> Self {
        Permissions::Restricted(perms.into_iter().fold(0, |acc, p| acc | p.bit()))
    }

    /// Whether `perm` is granted.
    pub fn allows(self, perm: Permission) -> bool {
        match self {
            Permissions::All => true,
            Permissions::Restricted(bits) => bits & perm.bit() != 0,
        }
    }

    /// The granted permissions, in display order.
    pub fn list(self) -> Vec<Permission> {
        Permission::ALL.into_iter().filter(|p| self.allows(*p)).collect()
    }

    /// Whether every permission of `other` is also granted by `self`.
    pub fn includes(self, other: Permissions) -> bool {
        match (self, other) {
            (Permissions::All, _) => true,
            (Permissions::Restricted(_), Permissions::All) => false,
            (Permissions::Restricted(mine), Permissions::Restricted(theirs)) => theirs & !mine == 0,
        }
    }

    /// The stored form: `all`, or the names joined by commas (`inference,keys:read`).
    pub fn to_storage(self) -> String {
        match self {
            Permissions::All => "all".to_owned(),
            Permissions::Restricted(_) => self.list().iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","),
        }
    }

    /// Parses the stored form. Unknown names are an error (never silently dropped).
    pub fn from_storage(s: &str) -> Option<Self> {
        if s == "all" {
            return Some(Permissions::All);
        }
        let mut perms = Vec::new();
        for name in s.split(',').filter(|n| !n.is_empty()) {
            perms.push(Permission::parse(name)?);
        }
        Some(Permissions::restricted(perms))
    }

    /// Summary for the portal: "All", the wire names ("inference, keys:read"), or "None".
    pub fn summary(self) -> String {
        match self {
            Permissions::All => "All".to_owned(),
            Permissions::Restricted(_) => {
                let names: Vec<&str> = self.list().iter().map(|p| p.as_str()).collect();
                if names.is_empty() { "None".to_owned() } else { names.join(", ") }
            }
        }
    }
}

/// Wire form: `"all"` or a list of names.
impl Serialize for Permissions {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Permissions::All => serializer.serialize_str("all"),
            Permissions::Restricted(_) => self.list().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Word(String),
            List(Vec<Permission>),
        }
        match Wire::deserialize(deserializer)? {
            Wire::Word(w) if w == "all" => Ok(Permissions::All),
            Wire::Word(w) => Err(serde::de::Error::custom(format!(
                "unknown permissions {w:?}: use \"all\" or a list of inference, keys:read, keys:write"
            ))),
            Wire::List(list) => Ok(Permissions::restricted(list)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_allows_everything_and_restricted_only_its_set() {
        assert!(Permission::ALL.iter().all(|p| Permissions::All.allows(*p)));
        let r = Permissions::restricted([Permission::Inference]);
        assert!(r.allows(Permission::Inference));
        assert!(!r.allows(Permission::KeysRead));
        assert!(!r.allows(Permission::KeysWrite));
    }

    #[test]
    fn storage_round_trips_and_rejects_unknown_names() {
        for p in [Permissions::All, Permissions::restricted([]), Permissions::restricted([Permission::KeysRead, Permission::Inference])] {
            assert_eq!(Permissions::from_storage(&p.to_storage()), Some(p));
        }
        assert_eq!(Permissions::restricted([Permission::KeysWrite, Permission::Inference]).to_storage(), "inference,keys:write");
        assert_eq!(Permissions::from_storage("inference,admin"), None);
    }

    #[test]
    fn wire_form() {
        assert_eq!(serde_json::to_string(&Permissions::All).expect("json"), "\"all\"");
        assert_eq!(serde_json::to_string(&Permissions::restricted([Permission::KeysRead])).expect("json"), "[\"keys:read\"]");
        assert_eq!(
            serde_json::from_str::<Permissions>("[\"inference\",\"keys:write\"]").expect("json"),
            Permissions::restricted([Permission::Inference, Permission::KeysWrite])
        );
        assert!(serde_json::from_str::<Permissions>("\"admin\"").is_err());
        assert!(serde_json::from_str::<Permissions>("[\"admin\"]").is_err());
    }

    #[test]
    fn a_key_cannot_grant_more_than_it_has() {
        let inference = Permissions::restricted([Permission::Inference]);
        let write = Permissions::restricted([Permission::KeysWrite]);
        assert!(Permissions::All.includes(inference));
        assert!(!write.includes(Permissions::All));
        assert!(!write.includes(inference));
        assert!(Permissions::restricted([Permission::KeysWrite, Permission::Inference]).includes(inference));
    }
}
