//! `query`: one SQL statement on a read-only connection.

use crate::cli::{QueryArgs, QueryFormat};
use crate::error::{Error, ExitCode, Result};
use crate::output::{CsvSink, JsonSink, TableSink};
use crate::store::{ArchiveReader, QueryError, RowSink};
use std::io::BufWriter;
use std::path::Path;

/// Runs the query and streams its result to stdout.
pub fn run(db: &Path, args: &QueryArgs) -> Result<ExitCode> {
    let archive = ArchiveReader::open(db)?;
    print_rows(args.format, |sink| archive.query(&args.sql, sink))
}

/// Streams the rows `produce` writes into a sink of `format` on stdout; a closed pipe ends quietly.
pub(crate) fn print_rows(
    format: QueryFormat,
    produce: impl FnOnce(&mut dyn RowSink) -> Result<u64, QueryError>,
) -> Result<ExitCode> {
    let out = BufWriter::new(std::io::stdout().lock());
    let mut sink: Box<dyn RowSink> = match format {
        QueryFormat::Table => Box::new(TableSink::new(out)),
        QueryFormat::Csv => Box::new(CsvSink::new(out)),
        QueryFormat::Json => Box::new(JsonSink::new(out, false)),
        QueryFormat::Ndjson => Box::new(JsonSink::new(out, true)),
    };
    match produce(sink.as_mut()) {
        Ok(_) => Ok(ExitCode::Ok),
        Err(QueryError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(ExitCode::Ok)
        }
        Err(QueryError::Output(e)) => Err(Error::io("cannot write the result")(e)),
        Err(QueryError::Sql(message)) => Err(Error::Usage(format!("query failed: {message}"))),
    }
}
