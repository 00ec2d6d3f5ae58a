//! The database's address, parsed once from the command line or the
//! environment, and shown everywhere without its password.

use std::fmt;
use std::str::FromStr;

use crate::Backend;

/// A database URL `ami` accepts: `sqlite:…`, `postgres://…` or
/// `postgresql://…`. Its `Display` and `Debug` hide the password
/// (`postgres://postgres:***@host/db`); only [`DatabaseUrl::expose`] gives
/// it, for the driver.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    backend: Backend,
}

/// A URL of no database `ami` knows.
#[derive(Debug, Clone, thiserror::Error)]
#[error("adresse de base de données non reconnue : sqlite://… ou postgres://… attendu")]
pub struct UnknownDatabaseUrl {
    /// The URL given, without its password.
    pub shown: String,
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<DatabaseUrl, UnknownDatabaseUrl> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(UnknownDatabaseUrl {
                shown: redacted(url),
            });
        };
        Ok(DatabaseUrl {
            url: url.to_string(),
            backend,
        })
    }

    /// Which database the URL names, from its scheme.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The whole URL, password included: for the database driver (or a
    /// process given the same database), never for a message or a log.
    pub fn expose(&self) -> &str {
        &self.url
    }
}

impl FromStr for DatabaseUrl {
    type Err = UnknownDatabaseUrl;

    fn from_str(url: &str) -> Result<DatabaseUrl, UnknownDatabaseUrl> {
        DatabaseUrl::parse(url)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redacted(&self.url))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&redacted(&self.url))
            .finish()
    }
}

/// The URL with `***` for the password of its user part and for the value
/// of any query parameter whose name says `password`. When in doubt (an
/// `@` further on, say) it hides more, never less.
fn redacted(url: &str) -> String {
    // The last `@` ends the user part at the earliest: a password may hold
    // an `@` of its own.
    let mut shown = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let (head, creds) = url[..at].split_at(scheme + 3);
            match creds.split_once(':') {
                Some((user, _)) => format!("{head}{user}:***{}", &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    };
    if let Some((head, query)) = shown.split_once('?') {
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                    format!("{key}=***")
                }
                _ => pair.to_string(),
            })
            .collect();
        shown = format!("{head}?{}", query.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        for (url, shown) in [
            (
                "postgres://postgres:s3cr3t@db.example:5432/ami",
                "postgres://postgres:***@db.example:5432/ami",
            ),
            (
                "postgresql://ami:s3cr3t@localhost/ami?sslmode=require",
                "postgresql://ami:***@localhost/ami?sslmode=require",
            ),
            // A password holding `@`, `:` or `?` (not percent-encoded).
            (
                "postgres://ami:s3c@r:e?t@host/ami",
                "postgres://ami:***@host/ami",
            ),
            (
                "postgres://ami@host/ami?password=s3cr3t&application_name=ami",
                "postgres://ami@host/ami?password=***&application_name=ami",
            ),
            (
                "postgres://:s3cr3t@host/ami?Password=s3cr3t",
                "postgres://:***@host/ami?Password=***",
            ),
        ] {
            let parsed = DatabaseUrl::parse(url).expect("accepted");
            assert_eq!(parsed.backend(), Backend::Postgres);
            assert_eq!(parsed.expose(), url);
            assert_eq!(parsed.to_string(), shown);
            assert_eq!(format!("{parsed:?}"), format!("DatabaseUrl({shown:?})"));
            for text in [
                parsed.to_string(),
                format!("{parsed:?}"),
                format!("{parsed:#?}"),
            ] {
                assert!(!text.contains("s3c"), "{text}");
            }
        }
        let refused = DatabaseUrl::parse("mysql://root:s3cr3t@host/ami").expect_err("refused");
        assert_eq!(refused.shown, "mysql://root:***@host/ami");
        assert!(!format!("{refused} {refused:?}").contains("s3c"));
    }

    #[test]
    fn the_urls_accepted_are_those_of_sqlite_and_postgresql() {
        for (url, backend) in [
            ("sqlite://ami.db", Backend::Sqlite),
            ("sqlite::memory:", Backend::Sqlite),
            ("sqlite:ami.db?mode=rw", Backend::Sqlite),
            ("postgres://postgres@127.0.0.1:5432/ami", Backend::Postgres),
            ("postgresql://postgres@127.0.0.1/ami", Backend::Postgres),
        ] {
            let parsed: DatabaseUrl = url.parse().expect(url);
            assert_eq!(parsed.backend(), backend, "{url}");
            assert_eq!(parsed.to_string(), url, "nothing to hide in {url}");
        }
        for url in [
            "",
            "ami.db",
            "mysql://root@host/ami",
            "postgres:ami",
            "Sqlite://ami.db",
        ] {
            let refused = DatabaseUrl::parse(url).expect_err(url);
            assert_eq!(
                refused.to_string(),
                "adresse de base de données non reconnue : sqlite://… ou postgres://… attendu"
            );
        }
    }
}
