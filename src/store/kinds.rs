//! The model's states and kinds as SQL values: each binds as its text spelling and reads back through
//! `FromStr`, so a row whose text names no variant is an error (a damaged or hand-edited archive), never a
//! silent default. A seal's format binds as its number, and reads back the same way.

use super::seal::SealFormat;
use crate::model::{ChangeKind, LeafKind, RejectReason, RunKind, RunStatus, WindowStatus};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

macro_rules! sql_text {
    ($($name:ty),+) => {$(
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.as_str().as_bytes())))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    )+};
}

sql_text!(WindowStatus, RunStatus, RunKind, ChangeKind, LeafKind);

/// A seal's format binds as its number (`seals.format`, checked `IN (1, 2)` by its migration).
impl ToSql for SealFormat {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.number()))
    }
}

impl FromSql for SealFormat {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let n = value.as_i64()?;
        SealFormat::from_number(n).ok_or(FromSqlError::OutOfRange(n))
    }
}

impl ToSql for RejectReason {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_bind_and_read_back_and_unknown_text_is_an_error() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for &status in WindowStatus::ALL {
            let back: WindowStatus = conn.query_row("SELECT ?1", [status], |r| r.get(0)).unwrap();
            assert_eq!(back, status);
        }
        for &kind in ChangeKind::ALL {
            let text: String = conn.query_row("SELECT ?1", [kind], |r| r.get(0)).unwrap();
            assert_eq!(text, kind.as_str());
        }
        let unknown = conn.query_row("SELECT 'done'", [], |r| r.get::<_, RunStatus>(0));
        assert!(unknown.is_err());
        let reason: String = conn
            .query_row("SELECT ?1", [RejectReason::NoId], |r| r.get(0))
            .unwrap();
        assert_eq!(reason, "no id");
        for format in SealFormat::ALL {
            let back: SealFormat = conn.query_row("SELECT ?1", [format], |r| r.get(0)).unwrap();
            assert_eq!(back, format);
        }
        assert!(
            conn.query_row("SELECT 3", [], |r| r.get::<_, SealFormat>(0))
                .is_err()
        );
        let migrations = include_str!("../../migrations/V7__seal_format.sql");
        let numbers: Vec<String> = SealFormat::ALL
            .iter()
            .map(|f| f.number().to_string())
            .collect();
        assert!(
            migrations.contains(&format!("format IN ({})", numbers.join(", "))),
            "the CHECK on seals.format spells every format"
        );
    }
}
