//! Statements on the writer's rusqlite connection, written the way the readers' sqlx queries
//! are (`query(..).bind(..).fetch_optional(conn)`), so the two read alike. Statements are
//! prepared once and cached by the connection; rows come back owned.

use std::sync::Arc;

use rusqlite::Connection;
use rusqlite::types::{FromSql, ToSql, Value, ValueRef};

use super::StoreError;
use super::row::Columns;

/// A statement with its parameters, in order (`?` or `?NNN`).
#[must_use = "a query does nothing until it is run"]
pub(super) struct Query<S> {
    sql: S,
    params: Vec<Result<Value, String>>,
}

/// The statement `sql`, prepared once per connection. Logged at TRACE (target `vix::sql`,
/// without its values), which is how the query-plan test sees every statement vix writes with.
pub(super) fn prepare<'c>(
    conn: &'c Connection,
    sql: &str,
) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    tracing::trace!(target: "vix::sql", statement = sql);
    conn.prepare_cached(sql)
}

/// A statement to run on the writer's connection.
pub(super) fn query<S: AsRef<str>>(sql: S) -> Query<S> {
    Query {
        sql,
        params: Vec::new(),
    }
}

/// What a statement that changes rows reports.
pub(super) struct Done {
    rows: usize,
}

impl Done {
    pub(super) fn rows_affected(&self) -> u64 {
        self.rows as u64
    }
}

impl<S: AsRef<str>> Query<S> {
    pub(super) fn bind<T: ToSql>(mut self, value: T) -> Self {
        let value =
            value
                .to_sql()
                .map_err(|error| error.to_string())
                .and_then(|output| match output {
                    rusqlite::types::ToSqlOutput::Borrowed(value) => {
                        Value::try_from(value).map_err(|error| error.to_string())
                    }
                    rusqlite::types::ToSqlOutput::Owned(value) => Ok(value),
                    _ => Err("a value kind vix does not store".to_owned()),
                });
        self.params.push(value);
        self
    }

    fn params(&self) -> Result<Vec<&Value>, StoreError> {
        self.params
            .iter()
            .map(|value| {
                value
                    .as_ref()
                    .map_err(|_| StoreError::Corrupt("a value that cannot be stored"))
            })
            .collect()
    }

    pub(super) fn execute(self, conn: &Connection) -> Result<Done, StoreError> {
        let params = self.params()?;
        let rows = prepare(conn, self.sql.as_ref())?.execute(rusqlite::params_from_iter(params))?;
        Ok(Done { rows })
    }

    pub(super) fn fetch_all(self, conn: &Connection) -> Result<Vec<OwnedRow>, StoreError> {
        let params = self.params()?;
        let mut statement = prepare(conn, self.sql.as_ref())?;
        let names: Arc<[String]> = statement
            .column_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut owned = Vec::new();
        while let Some(row) = rows.next()? {
            let values = (0..names.len())
                .map(|index| row.get::<_, Value>(index))
                .collect::<Result<Vec<_>, _>>()?;
            owned.push(OwnedRow {
                names: Arc::clone(&names),
                values,
            });
        }
        Ok(owned)
    }

    pub(super) fn fetch_optional(self, conn: &Connection) -> Result<Option<OwnedRow>, StoreError> {
        Ok(self.fetch_all(conn)?.into_iter().next())
    }

    /// The first column of every row.
    pub(super) fn scalars<T: FromSql>(self, conn: &Connection) -> Result<Vec<T>, StoreError> {
        self.fetch_all(conn)?
            .iter()
            .map(|row| row.get_index(0))
            .collect()
    }

    /// The first column of the first row, if there is a row.
    pub(super) fn scalar_optional<T: FromSql>(
        self,
        conn: &Connection,
    ) -> Result<Option<T>, StoreError> {
        self.fetch_optional(conn)?
            .map(|row| row.get_index(0))
            .transpose()
    }
}

/// A result row, owned, with its columns by name.
pub(super) struct OwnedRow {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl OwnedRow {
    pub(super) fn try_get<T: FromSql>(&self, name: &str) -> Result<T, StoreError> {
        let index =
            self.names
                .iter()
                .position(|column| column == name)
                .ok_or(StoreError::Corrupt(
                    "a column the statement does not return",
                ))?;
        self.get_index(index)
    }

    fn get_index<T: FromSql>(&self, index: usize) -> Result<T, StoreError> {
        let value = self.values.get(index).ok_or(StoreError::Corrupt(
            "a column the statement does not return",
        ))?;
        T::column_result(ValueRef::from(value))
            .map_err(|_| StoreError::Corrupt("a stored value of another type"))
    }
}

impl Columns for OwnedRow {
    fn text(&self, name: &str) -> Result<String, StoreError> {
        self.try_get(name)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.try_get(name)
    }
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        self.try_get(name)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.try_get(name)
    }
    fn blob(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.try_get(name)
    }
}
