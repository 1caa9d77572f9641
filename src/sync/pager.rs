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
}

/// 404s in a row, for one page past the first, that end a window.
pub const NOT_FOUND_CONFIRMATIONS: u32 = 2;

impl Pager {
    /// Takes the answer for the current page (asked with `page_size`) and says what to do next.
    pub fn after(&mut self, answer: Answer, page_size: usize) -> Step {
        match answer {
            Answer::Items(0) => Step::End,
            Answer::Items(n) => {
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
}
