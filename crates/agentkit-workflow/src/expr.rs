//! Conditions and templates over a run's JSON context, compiled once at publish time.
//!
//! Expressions are [`evalexpr`]'s language (`lead.score >= 50 && region == "eu"`, arithmetic,
//! string functions such as `str::to_lowercase(name)`); a variable is a dotted path into the run
//! context (`lead.score`, `items.0`). Evaluation is pure: assignments are refused.
//!
//! A **template** is any JSON value whose strings may hold `${...}`:
//! - a string that is exactly one `${path}` is replaced by the value at that path, whatever its
//!   type (an object stays an object);
//! - a string that is exactly one `${expression}` is replaced by the expression's value;
//! - otherwise each `${...}` is replaced by its value's text (`"Hi ${user.name}"`);
//! - `$${` writes a literal `${`.
//!
//! ```
//! use agentkit_workflow::expr::{Condition, Template};
//! use serde_json::json;
//!
//! let ctx = json!({"lead": {"name": "Ada", "score": 72, "tags": ["vip"]}});
//! let hot = Condition::compile("lead.score >= 50")?;
//! assert!(hot.eval(&ctx)?);
//! let args = Template::compile(&json!({
//!     "to": "${lead}", "subject": "Hi ${lead.name}", "double": "${lead.score * 2}"
//! }))?;
//! assert_eq!(
//!     args.render(&ctx)?,
//!     json!({"to": ctx["lead"], "subject": "Hi Ada", "double": 144})
//! );
//! # Ok::<(), agentkit_workflow::expr::ExprError>(())
//! ```

use evalexpr::{ContextWithMutableVariables, DefaultNumericTypes, HashMapContext};
use serde_json::{Map, Number, Value};

type Tree = evalexpr::Node<DefaultNumericTypes>;
type EvalValue = evalexpr::Value<DefaultNumericTypes>;

/// An expression that does not parse, or that fails on a run's context.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("expression `{expression}`: {message}")]
pub struct ExprError {
    /// The expression's text.
    pub expression: String,
    /// What went wrong.
    pub message: String,
}

impl ExprError {
    fn new(expression: &str, message: impl Into<String>) -> Self {
        Self {
            expression: expression.to_owned(),
            message: message.into(),
        }
    }
}

/// A compiled expression.
#[derive(Debug, Clone)]
struct Expr {
    source: String,
    tree: Tree,
    /// The variables it reads (dotted paths), without repeats.
    vars: Vec<String>,
    /// `Some(path)` when the expression is one bare path: its JSON value is used as it is.
    path: Option<String>,
}

impl Expr {
    fn compile(source: &str) -> Result<Self, ExprError> {
        let tree = evalexpr::build_operator_tree::<DefaultNumericTypes>(source)
            .map_err(|e| ExprError::new(source, e.to_string()))?;
        let mut vars: Vec<String> = Vec::new();
        for v in tree.iter_variable_identifiers() {
            if !vars.iter().any(|known| known == v) {
                vars.push(v.to_owned());
            }
        }
        if tree.iter().any(|n| {
            use evalexpr::Operator::*;
            matches!(
                n.operator(),
                Assign
                    | AddAssign
                    | SubAssign
                    | MulAssign
                    | DivAssign
                    | ModAssign
                    | ExpAssign
                    | AndAssign
                    | OrAssign
            )
        }) {
            return Err(ExprError::new(source, "assignments are not allowed"));
        }
        let trimmed = source.trim();
        let path = (vars.len() == 1 && vars[0] == trimmed).then(|| trimmed.to_owned());
        Ok(Self {
            source: source.to_owned(),
            tree,
            vars,
            path,
        })
    }

    fn eval(&self, ctx: &Value) -> Result<Value, ExprError> {
        if let Some(path) = &self.path {
            return Ok(lookup(ctx, path).cloned().unwrap_or(Value::Null));
        }
        let mut vars = HashMapContext::<DefaultNumericTypes>::new();
        for var in &self.vars {
            let value = match lookup(ctx, var) {
                Some(v) => to_eval(v)
                    .map_err(|m| ExprError::new(&self.source, format!("variable `{var}`: {m}")))?,
                None => EvalValue::Empty,
            };
            vars.set_value(var.clone(), value)
                .map_err(|e| ExprError::new(&self.source, e.to_string()))?;
        }
        let value = self
            .tree
            .eval_with_context(&vars)
            .map_err(|e| ExprError::new(&self.source, e.to_string()))?;
        Ok(from_eval(value))
    }
}

/// The value at a dotted path (`a.b.0.c`); numeric segments index arrays.
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, seg| match v {
        Value::Object(map) => map.get(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

fn to_eval(value: &Value) -> Result<EvalValue, String> {
    Ok(match value {
        Value::Null => EvalValue::Empty,
        Value::Bool(b) => EvalValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => EvalValue::Int(i),
            None => EvalValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => EvalValue::String(s.clone()),
        Value::Array(items) => {
            EvalValue::Tuple(items.iter().map(to_eval).collect::<Result<_, _>>()?)
        }
        Value::Object(_) => {
            return Err("is an object; read one of its fields (`x.field`)".to_owned());
        }
    })
}

fn from_eval(value: EvalValue) -> Value {
    match value {
        EvalValue::Empty => Value::Null,
        EvalValue::Boolean(b) => Value::Bool(b),
        EvalValue::Int(i) => Value::Number(i.into()),
        EvalValue::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        EvalValue::String(s) => Value::String(s),
        EvalValue::Tuple(items) => Value::Array(items.into_iter().map(from_eval).collect()),
    }
}

/// A compiled condition: an expression that must evaluate to a boolean.
#[derive(Debug, Clone)]
pub struct Condition {
    expr: Expr,
}

impl Condition {
    /// Parses a condition.
    pub fn compile(source: &str) -> Result<Self, ExprError> {
        Ok(Self {
            expr: Expr::compile(source)?,
        })
    }

    /// Evaluates it; a non-boolean result is an error.
    pub fn eval(&self, ctx: &Value) -> Result<bool, ExprError> {
        match self.expr.eval(ctx)? {
            Value::Bool(b) => Ok(b),
            other => Err(ExprError::new(
                &self.expr.source,
                format!("a condition must be true or false, not {other}"),
            )),
        }
    }

    /// The context paths it reads.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.expr.vars.iter().map(String::as_str)
    }
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Expr(Expr),
}

#[derive(Debug, Clone)]
enum Compiled {
    Literal(Value),
    /// Exactly one `${...}`: its value, any type.
    Whole(Expr),
    /// Text with `${...}` pieces.
    Interpolated(Vec<Part>),
    Array(Vec<Compiled>),
    Object(Vec<(String, Compiled)>),
}

/// A compiled template (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Template {
    root: Compiled,
}

impl Template {
    /// Compiles every `${...}` in `value`.
    pub fn compile(value: &Value) -> Result<Self, ExprError> {
        Ok(Self {
            root: compile_value(value)?,
        })
    }

    /// The value with every `${...}` replaced from `ctx`.
    pub fn render(&self, ctx: &Value) -> Result<Value, ExprError> {
        render(&self.root, ctx)
    }

    /// The context paths it reads.
    pub fn variables(&self) -> Vec<&str> {
        let mut out = Vec::new();
        collect_vars(&self.root, &mut out);
        out
    }
}

fn collect_vars<'a>(c: &'a Compiled, out: &mut Vec<&'a str>) {
    match c {
        Compiled::Literal(_) => {}
        Compiled::Whole(e) => out.extend(e.vars.iter().map(String::as_str)),
        Compiled::Interpolated(parts) => {
            for p in parts {
                if let Part::Expr(e) = p {
                    out.extend(e.vars.iter().map(String::as_str));
                }
            }
        }
        Compiled::Array(items) => items.iter().for_each(|i| collect_vars(i, out)),
        Compiled::Object(fields) => fields.iter().for_each(|(_, v)| collect_vars(v, out)),
    }
}

fn compile_value(value: &Value) -> Result<Compiled, ExprError> {
    Ok(match value {
        Value::String(s) => compile_string(s)?,
        Value::Array(items) => {
            Compiled::Array(items.iter().map(compile_value).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => Compiled::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), compile_value(v)?)))
                .collect::<Result<_, ExprError>>()?,
        ),
        other => Compiled::Literal(other.clone()),
    })
}

fn compile_string(s: &str) -> Result<Compiled, ExprError> {
    if !s.contains("${") {
        return Ok(Compiled::Literal(Value::String(s.to_owned())));
    }
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            // `$${` is a literal `${`.
            text.push_str(&rest[..at - 1]);
            text.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        text.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(ExprError::new(s, "`${` without a closing `}`"));
        };
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        parts.push(Part::Expr(Expr::compile(&after[..end])?));
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(match parts.as_slice() {
        [Part::Expr(e)] => Compiled::Whole(e.clone()),
        [Part::Text(t)] => Compiled::Literal(Value::String(t.clone())),
        _ => Compiled::Interpolated(parts),
    })
}

fn render(c: &Compiled, ctx: &Value) -> Result<Value, ExprError> {
    Ok(match c {
        Compiled::Literal(v) => v.clone(),
        Compiled::Whole(e) => e.eval(ctx)?,
        Compiled::Interpolated(parts) => {
            let mut out = String::new();
            for p in parts {
                match p {
                    Part::Text(t) => out.push_str(t),
                    Part::Expr(e) => match e.eval(ctx)? {
                        Value::String(s) => out.push_str(&s),
                        Value::Null => {}
                        other => out.push_str(&other.to_string()),
                    },
                }
            }
            Value::String(out)
        }
        Compiled::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render(i, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Compiled::Object(fields) => {
            let mut map = Map::with_capacity(fields.len());
            for (k, v) in fields {
                map.insert(k.clone(), render(v, ctx)?);
            }
            Value::Object(map)
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn paths_keep_their_type_and_missing_paths_are_null() {
        let ctx = json!({"a": {"b": [1, {"c": true}]}});
        let t = Template::compile(&json!(["${a.b.1}", "${a.zz}", "${a.b.0}"])).unwrap();
        assert_eq!(t.render(&ctx).unwrap(), json!([{"c": true}, null, 1]));
    }

    #[test]
    fn conditions_must_be_boolean_and_pure() {
        let ctx = json!({"n": 3});
        assert!(Condition::compile("n > 2").unwrap().eval(&ctx).unwrap());
        assert!(Condition::compile("n + 1").unwrap().eval(&ctx).is_err());
        assert!(Condition::compile("n = 4").is_err());
        assert!(Condition::compile("n += 4").is_err());
        assert!(Condition::compile("(n > 2").is_err());
        let reads_object = Condition::compile("a == 1").unwrap();
        assert!(reads_object.eval(&json!({"a": {"x": 1}})).is_err());
    }

    #[test]
    fn interpolation_and_escapes() {
        let ctx = json!({"name": "Ada", "n": 2});
        let t = Template::compile(&json!("$${literal} ${name} has ${n * 3}")).unwrap();
        assert_eq!(t.render(&ctx).unwrap(), json!("${literal} Ada has 6"));
        assert!(Template::compile(&json!("${unclosed")).is_err());
        assert_eq!(
            Template::compile(&json!({"x": "${name}"}))
                .unwrap()
                .variables(),
            vec!["name"]
        );
    }
}
