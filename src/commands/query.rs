//! `query`: one SQL statement on a read-only connection.

use crate::cli::{QueryArgs, QueryFormat};
use crate::error::{Error, ExitCode, Result};
use crate::output::{CsvSink, JsonSink, TableSink};
use crate::store::{self, read::QueryError, read::RowSink};
use std::io::BufWriter;
use std::path::Path;

/// Runs the query and streams its result to stdout.
pub fn run(db: &Path, args: &QueryArgs) -> Result<ExitCode> {
    let conn = store::open_read_only(db)?;
    print_rows(&conn, &args.sql, &[], args.format)
}

/// Runs `sql` with `params` and streams its rows to stdout in `format`.
pub(crate) fn print_rows(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[String],
    format: QueryFormat,
) -> Result<ExitCode> {
    let out = BufWriter::new(std::io::stdout().lock());
    let mut sink: Box<dyn RowSink> = match format {
        QueryFormat::Table => Box::new(TableSink::new(out)),
        QueryFormat::Csv => Box::new(CsvSink::new(out)),
        QueryFormat::Json => Box::new(JsonSink::new(out, false)),
        QueryFormat::Ndjson => Box::new(JsonSink::new(out, true)),
    };
    match store::read::run_query_with(conn, sql, params, sink.as_mut()) {
        Ok(_) => Ok(ExitCode::Ok),
        Err(QueryError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(ExitCode::Ok)
        }
        Err(QueryError::Output(e)) => Err(Error::Internal(format!("cannot write the result: {e}"))),
        Err(QueryError::Sql(message)) => Err(Error::Usage(format!("query failed: {message}"))),
    }
}
