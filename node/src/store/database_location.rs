//! Where a node's database is, as the configuration names it: a SQLite file for one machine, or
//! a PostgreSQL database for several instances. Shown without credentials.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a database is: a SQLite file (a path, or `sqlite://` and a path) or a PostgreSQL
/// database (`postgres://` or `postgresql://`, credentials and all).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DatabaseLocation {
    Sqlite(PathBuf),
    Postgres(String),
}

#[derive(Debug, thiserror::Error)]
#[error("a database location is a file path, sqlite://<path> or postgres://…; got an empty one")]
pub struct EmptyLocation;

impl FromStr for DatabaseLocation {
    type Err = EmptyLocation;

    fn from_str(location: &str) -> Result<Self, Self::Err> {
        let location = location.trim();
        if location.is_empty() {
            return Err(EmptyLocation);
        }
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            return Ok(Self::Postgres(location.to_owned()));
        }
        let path = location.strip_prefix("sqlite://").unwrap_or(location);
        if path.is_empty() {
            return Err(EmptyLocation);
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

impl TryFrom<String> for DatabaseLocation {
    type Error = EmptyLocation;

    fn try_from(location: String) -> Result<Self, Self::Error> {
        location.parse()
    }
}

impl From<DatabaseLocation> for String {
    fn from(location: DatabaseLocation) -> Self {
        match location {
            DatabaseLocation::Sqlite(path) => path.display().to_string(),
            DatabaseLocation::Postgres(url) => url,
        }
    }
}

impl From<PathBuf> for DatabaseLocation {
    fn from(path: PathBuf) -> Self {
        Self::Sqlite(path)
    }
}

/// Shown in logs and errors without a password: the URL's user information is left out.
impl fmt::Display for DatabaseLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                // The query may hold a password too (`?password=`): leave it out.
                let rest = rest.split_once('?').map_or(rest, |(path, _)| path);
                write!(f, "{scheme}://{rest}")
            }
        }
    }
}

impl fmt::Debug for DatabaseLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseLocation({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_a_path_a_sqlite_url_or_a_postgres_url() {
        assert_eq!(
            "data/hub.sqlite".parse::<DatabaseLocation>().unwrap(),
            DatabaseLocation::Sqlite(PathBuf::from("data/hub.sqlite"))
        );
        assert_eq!(
            "sqlite:///var/lib/vix/hub.sqlite"
                .parse::<DatabaseLocation>()
                .unwrap(),
            DatabaseLocation::Sqlite(PathBuf::from("/var/lib/vix/hub.sqlite"))
        );
        assert_eq!(
            "postgresql://vix@db/hub"
                .parse::<DatabaseLocation>()
                .unwrap(),
            DatabaseLocation::Postgres("postgresql://vix@db/hub".to_owned())
        );
        for empty in ["", "  ", "sqlite://"] {
            assert!(empty.parse::<DatabaseLocation>().is_err(), "{empty:?}");
        }
    }

    #[test]
    fn a_postgres_location_is_shown_without_its_credentials() {
        let location: DatabaseLocation =
            "postgres://vix:s3cret@db.example:5432/hub?password=also&sslmode=require"
                .parse()
                .unwrap();
        let shown = format!("{location} {location:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("also"),
            "{shown}"
        );
        assert!(shown.contains("db.example:5432/hub"), "{shown}");
    }
}
