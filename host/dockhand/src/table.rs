//! The one text-table printer of dockhand's operator output: the admin commands, `dockhand
//! reconcile`, `dockhand config validate`, `dockhand policy test` and
//! [`SweepReport::render_table`](crate::reconcile::SweepReport::render_table).
//!
//! Columns are left-aligned, as wide as their widest cell and two spaces apart; lines carry no
//! trailing spaces. Every cell is escaped with [`orphan_policy::display::escape`]: names,
//! images, versions and reasons come from containers, uploads and untrusted policies, and a
//! bidirectional or zero-width character must not reorder or hide what an operator reads.

use orphan_policy::display::escape;

/// A table with a header row and `N` columns.
#[derive(Debug)]
pub(crate) struct Table<const N: usize> {
    header: [String; N],
    rows: Vec<[String; N]>,
}

impl<const N: usize> Table<N> {
    /// An empty table under `header`.
    pub(crate) fn new(header: [&str; N]) -> Self {
        Self {
            header: header.map(str::to_owned),
            rows: Vec::new(),
        }
    }

    /// Adds a row; its cells are escaped.
    pub(crate) fn row(&mut self, cells: [String; N]) {
        self.rows.push(cells.map(|c| escape(&c).into_owned()));
    }

    /// The table, each line ending in `\n`.
    pub(crate) fn render(&self) -> String {
        let mut widths = [0usize; N];
        for cells in std::iter::once(&self.header).chain(&self.rows) {
            for (w, c) in widths.iter_mut().zip(cells) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for cells in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(c);
                line.extend(std::iter::repeat_n(' ', w - c.chars().count()));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell_without_trailing_spaces() {
        let mut t = Table::new(["A", "LONG HEADER", "C"]);
        t.row(["wide cell".to_owned(), "x".to_owned(), String::new()]);
        assert_eq!(
            t.render(),
            "A          LONG HEADER  C\nwide cell  x\n",
            "{}",
            t.render()
        );
    }

    #[test]
    fn format_characters_in_cells_are_escaped() {
        let mut t = Table::new(["NAME", "VERSION"]);
        t.row([
            "p\u{202e}olicy\u{200b}".to_owned(),
            "1\u{2066}.0\u{2069}".to_owned(),
        ]);
        let text = t.render();
        assert_eq!(
            text.lines().nth(1),
            Some("p\\u{202e}olicy\\u{200b}  1\\u{2066}.0\\u{2069}"),
            "{text}"
        );
    }
}
