//! The pager: when a window's paging may stop (pure, table-tested).
//!
//! The API gives no total, no next link: a window is paged `page=1,2,...` until the server runs out. The end
//! is confirmed, never assumed:
//! - an **empty page** ends the window;
//! - a **short page** (fewer items than `pageSize`) is not trusted as the end: a server may cap its pages
//!   below the documented maximum, or filter items out after paging (permissions). The next page is asked
//!   for; if it is empty (or past the end), the window ends; if it holds items, the server serves fewer than
//!   asked: paging goes on, and the cap is reported once;
//! - a **404 past the first page** (how some servers say "past the end") is asked again once, whatever page
//!   came before (a gateway's passing 404 must not cut a window, and a page that looks short may be a capped
//!   one with more behind it); a second 404 in a row ends the window.
//!
//! Asking ahead: the pager's decisions are taken page by page, in page order, whatever order the answers
//! come in; but the engine may ask for the pages after the current one before it is answered, so that one
//! dense window keeps every allowed request busy. How far ahead is decided here too ([`window_share`],
//! [`Pager::ahead`], [`pages_to_ask`]): a window shares the run's requests with the windows still running,
//! never takes a request from a window waiting to start, asks ahead before its first page only when it is
//! alone, and after a short page (most likely its last) asks only for the page that confirms the end. A
//! request that comes back with a full page lets the next page go at once, while its page waits its turn:
//! a page slow to arrive or to be taken does not hold up the requests after it. Pages asked for past the end
//! are never handed on: their answers are dropped.

/// What the server answered for one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A page of this many items.
    Items(usize),
    /// 404 for a page past the first.
    NotFound,
}

/// What the pager does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Ask for the next page.
    Next,
    /// Ask for the same page again (to confirm a 404).
    Again,
    /// The window is complete.
    End,
}

/// Where the paging of one window stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pager {
    /// The previous page held fewer items than asked.
    previous_short: bool,
    /// 404s in a row for the current page.
    not_found: u32,
    /// The size of the first short page that had more items behind it: the server serves fewer than asked
    /// (a page cap, or items filtered out after paging).
    pub served_fewer: Option<usize>,
    /// The size of the previous page.
    previous: usize,
    /// A page was answered (404s aside).
    answered: bool,
}

/// 404s in a row, for one page past the first, that end a window.
pub const NOT_FOUND_CONFIRMATIONS: u32 = 2;

/// How many pages one window may have asked for and not yet taken, when `concurrency` requests are allowed
/// at once, `waiting` windows of the run have not started and `running` windows (this one included) are
/// being paged: one while windows wait to start (each window's next page comes first: a range of many
/// windows is paged as it always was, one page per window at a time), else an even share of the requests,
/// rounded up (the run's limit on requests in flight is kept by the engine; the share only keeps one window
/// from queueing ahead of the others).
pub fn window_share(concurrency: usize, waiting: usize, running: usize) -> usize {
    if waiting > 0 {
        return 1;
    }
    concurrency.max(1).div_ceil(running.max(1))
}

/// How many pages a window asks for now, when it may have `depth` requests outstanding (see
/// [`Pager::ahead`]) and has `asked` pages asked for and not yet taken, of which `freed` came back full.
///
/// A page's request is outstanding until its page is taken, or until it comes back full (as many items as
/// the server serves per page: the window goes on past it, whatever the pages before it hold): then its
/// request is over and the next page may go, while the page waits its turn to be taken. So the window's
/// requests follow one another as fast as the server answers, not as fast as pages are classified and
/// taken in page order. An answer that is not full (short, empty, 404, an error) keeps its request
/// outstanding until it is taken, so after the end at most `depth - 1` pages are ever asked for. Pages
/// waiting to be taken are at most `depth` more: the memory a window holds stays bounded.
pub fn pages_to_ask(depth: usize, asked: usize, freed: usize) -> usize {
    let depth = depth.max(1);
    let outstanding = asked.saturating_sub(freed);
    let for_requests = depth.saturating_sub(outstanding);
    let for_memory = (2 * depth).saturating_sub(asked);
    for_requests.min(for_memory)
}

impl Pager {
    /// How many requests to have outstanding (see [`pages_to_ask`]), for a window whose share is `share` (see
    /// [`window_share`]), with pages of `page_size` asked: the share, unless the page just taken was short
    /// (fewer items than the server serves per page, its cap once known), which most likely ends the
    /// window: then only the page that confirms it. Before its first page nothing is known of the window: a
    /// window that `started_alone` (the only one of its run left: one dense day, the last window of a
    /// range) asks for its share at once, since nobody else could use the requests; one that started among
    /// others asks for its first page only, and ahead once a full page shows it dense (so the last windows
    /// of a range of empty or sparse ones do not ask for pages they have not got).
    pub fn ahead(&self, share: usize, page_size: usize, started_alone: bool) -> usize {
        let full = self.full_page(page_size);
        let blind = !self.answered && !started_alone;
        if blind || (self.previous_short && self.previous < full) {
            1
        } else {
            share.max(1)
        }
    }

    /// How many items a full page holds, asked with `page_size`: the page size, or the server's cap once
    /// known (see [`Pager::served_fewer`]).
    pub fn full_page(&self, page_size: usize) -> usize {
        self.served_fewer.unwrap_or(page_size)
    }

    /// Takes the answer for the current page (asked with `page_size`) and says what to do next.
    pub fn after(&mut self, answer: Answer, page_size: usize) -> Step {
        match answer {
            Answer::Items(0) => {
                self.answered = true;
                Step::End
            }
            Answer::Items(n) => {
                self.answered = true;
                if self.previous_short && self.served_fewer.is_none() {
                    self.served_fewer = Some(self.previous);
                }
                self.previous_short = n < page_size;
                self.previous = n;
                self.not_found = 0;
                Step::Next
            }
            Answer::NotFound => {
                self.not_found += 1;
                if self.not_found >= NOT_FOUND_CONFIRMATIONS {
                    Step::End
                } else {
                    Step::Again
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Answer::{Items, NotFound};
    use Step::{Again, End, Next};

    #[test]
    fn the_end_of_a_window_is_confirmed() {
        /// (name, answers, steps expected, a short page seen with more behind it).
        type Case = (&'static str, Vec<Answer>, Vec<Step>, Option<usize>);
        let cases: Vec<Case> = vec![
            ("an empty first page", vec![Items(0)], vec![End], None),
            (
                "full pages, then empty",
                vec![Items(10), Items(10), Items(0)],
                vec![Next, Next, End],
                None,
            ),
            (
                "a short page is confirmed by an empty one",
                vec![Items(10), Items(3), Items(0)],
                vec![Next, Next, End],
                None,
            ),
            (
                "a capped server: short pages with more behind them",
                vec![Items(4), Items(4), Items(4), Items(1), Items(0)],
                vec![Next, Next, Next, Next, End],
                Some(4),
            ),
            (
                "a short page then 404: asked again, then the end",
                vec![Items(3), NotFound, NotFound],
                vec![Next, Again, End],
                None,
            ),
            (
                "a capped page then a passing 404 does not cut the window",
                vec![Items(4), NotFound, Items(4), Items(4), Items(1), Items(0)],
                vec![Next, Again, Next, Next, Next, End],
                Some(4),
            ),
            (
                "a full page then one 404: asked again, then the end",
                vec![Items(10), NotFound, NotFound],
                vec![Next, Again, End],
                None,
            ),
            (
                "a passing 404 after a full page does not cut the window",
                vec![Items(10), NotFound, Items(10), Items(2), Items(0)],
                vec![Next, Again, Next, Next, End],
                None,
            ),
            (
                "items filtered after paging: a short page, then a full one",
                vec![Items(7), Items(10), Items(0)],
                vec![Next, Next, End],
                Some(7),
            ),
        ];
        for (name, answers, want, cap) in cases {
            let mut pager = Pager::default();
            let got: Vec<Step> = answers.iter().map(|a| pager.after(*a, 10)).collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(pager.served_fewer, cap, "{name}");
        }
    }

    #[test]
    fn a_window_shares_the_requests_with_the_windows_running_and_never_takes_one_from_a_waiting_window()
     {
        // (concurrency, waiting, running, share)
        let cases = [
            (8, 0, 1, 8),
            (8, 0, 2, 4),
            (8, 0, 3, 3),
            (8, 0, 8, 1),
            (8, 22, 8, 1),
            (8, 1, 1, 1),
            (1, 0, 1, 1),
            (4, 0, 0, 4),
            (0, 0, 1, 1),
            (3, 0, 5, 1),
        ];
        for (concurrency, waiting, running, want) in cases {
            assert_eq!(
                window_share(concurrency, waiting, running),
                want,
                "concurrency {concurrency}, {waiting} waiting, {running} running"
            );
        }
    }

    #[test]
    fn a_request_that_came_back_full_lets_the_next_page_go_before_its_page_is_taken() {
        // (name, depth, asked and not taken, of which came back full, pages to ask now)
        let cases = [
            ("nothing asked yet", 8, 0, 0, 8),
            ("every request outstanding", 8, 8, 0, 0),
            ("three came back full", 8, 8, 3, 3),
            ("full answers wait their turn", 8, 13, 5, 0),
            ("memory: at most twice the depth waiting", 8, 16, 16, 0),
            ("memory bounds the requests too", 8, 14, 10, 2),
            (
                "one at a time: the next goes once the page came back full",
                1,
                1,
                1,
                1,
            ),
            ("one at a time, not yet answered", 1, 1, 0, 0),
            ("one at a time, two waiting", 1, 2, 2, 0),
            ("a depth of 0 is 1", 0, 0, 0, 1),
        ];
        for (name, depth, asked, freed, want) in cases {
            assert_eq!(pages_to_ask(depth, asked, freed), want, "{name}");
        }
    }

    #[test]
    fn after_a_short_page_only_the_page_that_confirms_the_end_is_asked_for() {
        // (name, answers taken so far, pages ahead with a share of 8 and pages of 10, for a window that
        // started alone; one that started among others asks for its first page alone)
        let cases: Vec<(&str, Vec<Answer>, usize)> = vec![
            ("nothing known yet", vec![], 8),
            ("after full pages", vec![Items(10), Items(10)], 8),
            ("after a short page", vec![Items(10), Items(3)], 1),
            (
                "a capped server, once its cap is known, pages at full speed",
                vec![Items(4), Items(4)],
                8,
            ),
            ("a capped server's first page", vec![Items(4)], 1),
            (
                "a page shorter than the known cap",
                vec![Items(4), Items(4), Items(1)],
                1,
            ),
            ("after a passing 404", vec![Items(10), NotFound], 8),
            ("more items than asked", vec![Items(12)], 8),
        ];
        for (name, answers, want) in cases {
            let mut pager = Pager::default();
            let blind = answers.is_empty();
            for answer in answers {
                pager.after(answer, 10);
            }
            assert_eq!(pager.ahead(8, 10, true), want, "{name}, started alone");
            let among_others = if blind { 1 } else { want };
            assert_eq!(
                pager.ahead(8, 10, false),
                among_others,
                "{name}, started among others"
            );
        }
        assert_eq!(
            Pager::default().ahead(0, 10, true),
            1,
            "at least the next page"
        );
    }
}
