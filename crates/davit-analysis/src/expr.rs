//! The condition language: `result < 0.05`, `result >= 0 && result <= 2.0`.
//!
//! Argo Rollouts users write success and failure conditions as expressions over `result`, so
//! davit accepts the same shape. It is deliberately tiny (comparisons of `result` with number
//! literals, `&&`, `||`, `!` and parentheses) and parsed by hand: a condition comes from a
//! config file or an action input, and nothing in it must ever reach a shell or an evaluator
//! that can do more than compare numbers. Anything else is rejected when the spec is loaded,
//! with the column and what was expected, so a typo fails the run before the deploy rather than
//! turning every measurement into an error during the watch window.

use std::fmt;

/// A parsed condition. Evaluate it with [`Expr::eval`].
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Cmp(Operand, Op, Operand),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Bool(bool),
}

/// One side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Operand {
    Result,
    Number(f64),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// Why a condition did not parse: where, and what would have been valid there.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} at column {column} of `{input}`")]
pub struct ExprError {
    pub input: String,
    /// 1-based character column.
    pub column: usize,
    pub message: String,
}

/// Longest condition accepted; a condition is one line in a config file, and the bound keeps
/// the recursive-descent parser's depth small whatever the input.
const MAX_LEN: usize = 512;

impl Expr {
    /// Parse a condition such as `result < 0.05 || result == 0`.
    pub fn parse(input: &str) -> Result<Expr, ExprError> {
        let err = |column: usize, message: String| ExprError {
            input: input.to_string(),
            column,
            message,
        };
        if input.len() > MAX_LEN {
            return Err(err(
                MAX_LEN + 1,
                format!("condition is longer than {MAX_LEN} characters"),
            ));
        }
        let tokens = lex(input).map_err(|(c, m)| err(c, m))?;
        if tokens.is_empty() {
            return Err(err(
                1,
                "empty condition; expected e.g. `result < 0.05`".into(),
            ));
        }
        let mut p = Parser {
            tokens: &tokens,
            pos: 0,
            end_col: input.chars().count() + 1,
            depth: 0,
        };
        let e = p.or().map_err(|(c, m)| err(c, m))?;
        if let Some(t) = p.peek() {
            return Err(err(
                t.col,
                format!(
                    "unexpected {}; expected `&&`, `||` or the end",
                    t.kind.describe()
                ),
            ));
        }
        Ok(e)
    }

    /// Evaluate against a measured value. Callers never pass NaN or infinities: those are
    /// inconclusive before any condition is looked at.
    pub fn eval(&self, result: f64) -> bool {
        match self {
            Expr::Bool(b) => *b,
            Expr::Not(e) => !e.eval(result),
            Expr::And(a, b) => a.eval(result) && b.eval(result),
            Expr::Or(a, b) => a.eval(result) || b.eval(result),
            Expr::Cmp(l, op, r) => {
                let v = |o: &Operand| match o {
                    Operand::Result => result,
                    Operand::Number(n) => *n,
                };
                let (l, r) = (v(l), v(r));
                match op {
                    Op::Lt => l < r,
                    Op::Le => l <= r,
                    Op::Gt => l > r,
                    Op::Ge => l >= r,
                    Op::Eq => l == r,
                    Op::Ne => l != r,
                }
            }
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Result,
    Number(f64),
    Op(Op),
    And,
    Or,
    Not,
    True,
    False,
    LParen,
    RParen,
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Kind::Result => "`result`".into(),
            Kind::Number(n) => format!("number `{n}`"),
            Kind::Op(o) => format!("`{o}`"),
            Kind::And => "`&&`".into(),
            Kind::Or => "`||`".into(),
            Kind::Not => "`!`".into(),
            Kind::True => "`true`".into(),
            Kind::False => "`false`".into(),
            Kind::LParen => "`(`".into(),
            Kind::RParen => "`)`".into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    col: usize,
}

fn lex(input: &str) -> Result<Vec<Token>, (usize, String)> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let next = chars.get(i + 1).copied();
        let mut push = |kind, len| {
            out.push(Token { kind, col });
            len
        };
        i += match c {
            c if c.is_whitespace() => 1,
            '(' => push(Kind::LParen, 1),
            ')' => push(Kind::RParen, 1),
            '<' if next == Some('=') => push(Kind::Op(Op::Le), 2),
            '<' => push(Kind::Op(Op::Lt), 1),
            '>' if next == Some('=') => push(Kind::Op(Op::Ge), 2),
            '>' => push(Kind::Op(Op::Gt), 1),
            '=' if next == Some('=') => push(Kind::Op(Op::Eq), 2),
            '!' if next == Some('=') => push(Kind::Op(Op::Ne), 2),
            '!' => push(Kind::Not, 1),
            '&' if next == Some('&') => push(Kind::And, 2),
            '|' if next == Some('|') => push(Kind::Or, 2),
            '=' => return Err((col, "`=` is not a comparison; use `==`".into())),
            '&' => return Err((col, "`&` is not an operator; use `&&`".into())),
            '|' => return Err((col, "`|` is not an operator; use `||`".into())),
            c if c.is_ascii_digit() || c == '.' || c == '-' || c == '+' => {
                let start = i;
                let mut j = i + 1;
                while j < chars.len() {
                    let d = chars[j];
                    let exp_sign = (d == '-' || d == '+') && matches!(chars[j - 1], 'e' | 'E');
                    if d.is_ascii_digit() || d == '.' || d == 'e' || d == 'E' || exp_sign {
                        j += 1;
                    } else {
                        break;
                    }
                }
                let text: String = chars[start..j].iter().collect();
                match text.parse::<f64>() {
                    Ok(n) if n.is_finite() => push(Kind::Number(n), j - start),
                    _ => return Err((col, format!("`{text}` is not a number"))),
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                let mut j = i;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let word: String = chars[start..j].iter().collect();
                let kind = match word.as_str() {
                    "result" => Kind::Result,
                    "and" => Kind::And,
                    "or" => Kind::Or,
                    "not" => Kind::Not,
                    "true" => Kind::True,
                    "false" => Kind::False,
                    _ => {
                        return Err((
                            col,
                            format!(
                                "unknown name `{word}`; a condition compares `result` with numbers, e.g. `result < 0.05`"
                            ),
                        ));
                    }
                };
                push(kind, j - start)
            }
            other => {
                return Err((
                    col,
                    format!(
                        "unexpected character `{}`; allowed: result, numbers, < <= > >= == !=, &&, ||, !, ( )",
                        other.escape_default()
                    ),
                ));
            }
        };
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    end_col: usize,
    depth: usize,
}

type PResult = Result<Expr, (usize, String)>;

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next_if(&mut self, k: &Kind) -> bool {
        if self.peek().is_some_and(|t| &t.kind == k) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> PResult {
        let mut e = self.and()?;
        while self.next_if(&Kind::Or) {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> PResult {
        let mut e = self.unary()?;
        while self.next_if(&Kind::And) {
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> PResult {
        self.depth += 1;
        if self.depth > 64 {
            return Err((self.col(), "condition nests too deeply".into()));
        }
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> PResult {
        let Some(t) = self.peek().cloned() else {
            return Err((
                self.end_col,
                "condition ends early; expected a comparison like `result < 1`".into(),
            ));
        };
        match t.kind {
            Kind::Not => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Kind::LParen => {
                self.pos += 1;
                let e = self.or()?;
                if !self.next_if(&Kind::RParen) {
                    return Err((self.col(), "expected `)`".into()));
                }
                Ok(e)
            }
            Kind::True => {
                self.pos += 1;
                Ok(Expr::Bool(true))
            }
            Kind::False => {
                self.pos += 1;
                Ok(Expr::Bool(false))
            }
            _ => self.comparison(),
        }
    }

    fn col(&self) -> usize {
        self.peek().map_or(self.end_col, |t| t.col)
    }

    fn operand(&mut self) -> Result<Operand, (usize, String)> {
        match self.peek().map(|t| t.kind.clone()) {
            Some(Kind::Result) => {
                self.pos += 1;
                Ok(Operand::Result)
            }
            Some(Kind::Number(n)) => {
                self.pos += 1;
                Ok(Operand::Number(n))
            }
            Some(k) => Err((
                self.col(),
                format!("unexpected {}; expected `result` or a number", k.describe()),
            )),
            None => Err((
                self.end_col,
                "condition ends early; expected `result` or a number".into(),
            )),
        }
    }

    fn comparison(&mut self) -> PResult {
        let l = self.operand()?;
        let op = match self.peek().map(|t| t.kind.clone()) {
            Some(Kind::Op(op)) => {
                self.pos += 1;
                op
            }
            Some(k) => {
                return Err((
                    self.col(),
                    format!(
                        "unexpected {}; expected a comparison (< <= > >= == !=)",
                        k.describe()
                    ),
                ));
            }
            None => {
                return Err((
                    self.end_col,
                    "condition ends early; expected a comparison (< <= > >= == !=)".into(),
                ));
            }
        };
        let r = self.operand()?;
        if !matches!(l, Operand::Result) && !matches!(r, Operand::Result) {
            // `1 < 2` is constant: almost certainly a typo for `result < 2`.
            return Err((
                self.tokens[self.pos - 3].col,
                "this comparison does not use `result`".into(),
            ));
        }
        Ok(Expr::Cmp(l, op, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(src: &str, v: f64) -> bool {
        Expr::parse(src).unwrap().eval(v)
    }

    #[test]
    fn comparisons() {
        assert!(ev("result < 0.05", 0.01));
        assert!(!ev("result < 0.05", 0.05));
        assert!(ev("result <= 0.05", 0.05));
        assert!(ev("result > 1e2", 101.0));
        assert!(ev("result >= 100", 100.0));
        assert!(ev("result == 0", 0.0));
        assert!(ev("result != 0", 1.0));
        assert!(ev("0.5 > result", 0.4), "number on the left");
        assert!(ev("result > -1", -0.5), "negative literal");
        assert!(ev("result < 1.5e-3", 0.001));
    }

    #[test]
    fn boolean_operators_and_precedence() {
        assert!(ev("result <= 2.0 && result >= 0", 1.0));
        assert!(!ev("result <= 2.0 && result >= 0", -1.0));
        assert!(ev("result < 0 || result > 10", 11.0));
        // && binds tighter than ||: true || (false && false)
        assert!(ev("result == 1 || result == 2 && result == 3", 1.0));
        assert!(!ev("(result == 1 || result == 2) && result == 3", 1.0));
        assert!(ev("!(result > 5)", 4.0));
        assert!(ev("not (result > 5) and result >= 0", 4.0));
        assert!(ev("result > 5 or true", 0.0));
    }

    #[test]
    fn garbage_is_rejected_with_a_column_and_a_fix() {
        let cases = [
            ("", "empty condition"),
            ("result", "ends early; expected a comparison"),
            ("result <", "expected `result` or a number"),
            ("result = 1", "use `==`"),
            ("result < 1 & result > 0", "use `&&`"),
            ("result < 1 |", "use `||`"),
            ("resutl < 1", "unknown name `resutl`"),
            ("$(id) < 1", "unexpected character `$`"),
            ("result < 1; rm -rf /", "unexpected character `;`"),
            ("result < `id`", "unexpected character `"),
            ("(result < 1", "expected `)`"),
            ("result < 1)", "unexpected `)`"),
            ("1 < 2", "does not use `result`"),
            ("result < 1.2.3", "`1.2.3` is not a number"),
            ("result < 1e999", "is not a number"),
            ("result < 1 result > 2", "unexpected `result`"),
            ("result < 0.05\n; id", "unexpected character `;`"),
        ];
        for (src, want) in cases {
            let e = Expr::parse(src).expect_err(src);
            assert!(
                e.to_string().contains(want),
                "`{src}`: got `{e}`, want `{want}`"
            );
        }
        let e = Expr::parse("result < 1 & result > 0").unwrap_err();
        assert_eq!(e.column, 12);
    }

    #[test]
    fn deep_nesting_and_long_input_are_bounded() {
        let deep = format!("{}result < 1{}", "(".repeat(100), ")".repeat(100));
        assert!(Expr::parse(&deep).unwrap_err().message.contains("nests"));
        let long = format!("result < 1{}", " || result < 1".repeat(100));
        assert!(Expr::parse(&long).unwrap_err().message.contains("longer"));
    }
}
