//! Validation at load: every problem of a definition, each with the node it is about, and the
//! compiled form the engine runs (templates and conditions parsed once).

use std::collections::{BTreeSet, HashMap, HashSet};

use agentkit_core::Error;
use agentkit_core::id::AgentId;

use crate::definition::{NodeKind, WorkflowDefinition};
use crate::expr::{Condition, Template};

/// The longest node id.
pub const MAX_NODE_ID_LEN: usize = 64;

/// One problem in a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The node it is about, when one.
    pub node: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.node {
            Some(n) => write!(f, "node `{n}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Every problem found in a definition; converts to
/// [`Error::InvalidConfig`] listing them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workflow `{workflow}` v{version} is invalid: {}", list(.problems))]
pub struct ValidationError {
    /// The workflow.
    pub workflow: String,
    /// Its version.
    pub version: u32,
    /// The problems, in the order found.
    pub problems: Vec<Problem>,
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ValidationError {
    /// Whether a problem names this node.
    pub fn names(&self, node: &str) -> bool {
        self.problems
            .iter()
            .any(|p| p.node.as_deref() == Some(node))
    }
}

impl From<ValidationError> for Error {
    fn from(e: ValidationError) -> Self {
        Error::InvalidConfig(e.to_string())
    }
}

/// What a definition may refer to: the tools and agents the engine has. `None` skips the check.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Tool names.
    pub tools: Option<HashSet<String>>,
    /// Agent ids.
    pub agents: Option<HashSet<AgentId>>,
}

/// A node's parsed templates.
#[derive(Debug, Clone)]
pub(crate) struct CompiledNode {
    /// Tool args, approval payload, sub-workflow input, or agent input (as a string template).
    pub main: Option<Template>,
    /// Event correlation.
    pub correlation: Option<Template>,
    /// Transform assignments.
    pub set: Vec<(String, Template)>,
    /// Compensation arguments.
    pub compensate: Option<Template>,
}

/// A validated definition, ready to run.
#[derive(Debug, Clone)]
pub struct CompiledWorkflow {
    pub(crate) def: WorkflowDefinition,
    pub(crate) nodes: HashMap<String, CompiledNode>,
    pub(crate) edges: HashMap<String, Vec<(String, Option<Condition>)>>,
    /// Branch count per join node.
    pub(crate) joins: HashMap<String, u32>,
}

impl CompiledWorkflow {
    /// The definition.
    pub fn definition(&self) -> &WorkflowDefinition {
        &self.def
    }

    /// A node's main template: a tool node's arguments, an approval's payload, a
    /// sub-workflow's input or an agent node's input (as a string template).
    pub fn template(&self, node: &str) -> Option<&Template> {
        self.nodes.get(node).and_then(|n| n.main.as_ref())
    }

    /// A `wait_event` node's correlation template.
    pub fn correlation(&self, node: &str) -> Option<&Template> {
        self.nodes.get(node).and_then(|n| n.correlation.as_ref())
    }

    /// A `transform` node's assignments, key and template.
    pub fn assignments(&self, node: &str) -> &[(String, Template)] {
        self.nodes.get(node).map_or(&[], |n| n.set.as_slice())
    }

    /// The arguments template of a node's compensation.
    pub fn compensation(&self, node: &str) -> Option<&Template> {
        self.nodes.get(node).and_then(|n| n.compensate.as_ref())
    }

    /// A `wait_event` node's correlation key rendered against `context` (a non-string value
    /// as its JSON text); an error when it is empty or cannot be rendered. Both engines key
    /// events with it.
    pub fn correlation_key(
        &self,
        node: &str,
        context: &serde_json::Value,
    ) -> Result<String, String> {
        match self.correlation(node).map(|t| t.render(context)) {
            Some(Ok(serde_json::Value::String(s))) => Ok(s),
            Some(Ok(serde_json::Value::Null)) | None => Err("the correlation key is empty".into()),
            Some(Ok(other)) => Ok(other.to_string()),
            Some(Err(e)) => Err(format!("its correlation: {e}")),
        }
    }

    /// A `transform` node's output: each assigned key rendered against `context`; an error
    /// naming the key whose template fails. Both engines merge it into the context.
    pub fn transform(
        &self,
        node: &str,
        context: &serde_json::Value,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let mut out = serde_json::Map::new();
        for (k, t) in self.assignments(node) {
            let v = t.render(context).map_err(|e| format!("`{k}`: {e}"))?;
            out.insert(k.clone(), v);
        }
        Ok(out)
    }

    /// How many branches meet at `join` (1 for a node that is no join).
    pub fn branches_at(&self, join: &str) -> u32 {
        self.joins.get(join).copied().unwrap_or(1)
    }

    /// Where a run goes after `from` with `context`: the target of the first outgoing edge
    /// whose condition holds, `None` when the node has no edges (the branch ends), an error
    /// when it has edges and none holds or a condition cannot be evaluated. Every engine
    /// routes through this one function.
    pub fn next_node(
        &self,
        from: &str,
        context: &serde_json::Value,
    ) -> Result<Option<&str>, String> {
        let edges = self.edges.get(from).map(Vec::as_slice).unwrap_or(&[]);
        for (to, cond) in edges {
            let holds = match cond {
                None => true,
                Some(c) => c
                    .eval(context)
                    .map_err(|e| format!("edge from `{from}` to `{to}`: {e}"))?,
            };
            if holds {
                return Ok(Some(to));
            }
        }
        if edges.is_empty() {
            Ok(None)
        } else {
            Err(format!("no edge from `{from}` holds for the run's context"))
        }
    }
}

/// Checks a definition against a catalog and compiles it. Reports, with node ids: duplicate or
/// malformed ids, a missing start, dangling edges and targets, unreachable nodes, cycles with
/// neither an exit nor a bound, unknown tools and agents, expressions that do not parse, and
/// expressions that read context keys no input, parameter or node output provides.
///
/// ```
/// use agentkit_workflow::{Catalog, WorkflowDefinition, validate};
/// use serde_json::json;
///
/// let def: WorkflowDefinition = serde_json::from_value(json!({
///     "id": "w", "version": 1, "start": "a",
///     "nodes": [{"id": "a", "kind": "branch"}, {"id": "lost", "kind": "branch"}],
///     "edges": [{"from": "a", "to": "nowhere", "when": "score > 1"}]
/// }))?;
/// let err = validate(&def, &Catalog::default()).unwrap_err();
/// assert!(err.names("lost")); // unreachable
/// assert!(err.names("a")); // dangling edge, and `score` is no known context key
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn validate(
    def: &WorkflowDefinition,
    catalog: &Catalog,
) -> Result<CompiledWorkflow, ValidationError> {
    let mut problems = Vec::new();

    // Ids.
    let mut ids = HashSet::new();
    for n in &def.nodes {
        if n.id.is_empty()
            || n.id.len() > MAX_NODE_ID_LEN
            || !n
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            push(
                &mut problems,
                Some(&n.id),
                format!("a node id is 1 to {MAX_NODE_ID_LEN} letters, digits, `_` or `-`"),
            );
        }
        if !ids.insert(n.id.as_str()) {
            push(
                &mut problems,
                Some(&n.id),
                "the id is used by two nodes".into(),
            );
        }
    }
    if !ids.contains(def.start.as_str()) {
        push(
            &mut problems,
            None,
            format!("the start node `{}` does not exist", def.start),
        );
    }

    // Known context keys: inputs, params, node outputs, transform keys.
    let mut known: HashSet<&str> = def.inputs.iter().map(String::as_str).collect();
    known.insert("params");
    for n in &def.nodes {
        known.insert(n.output_key());
        if let NodeKind::Transform { set } = &n.kind {
            known.extend(set.keys().map(String::as_str));
        }
    }
    let check_vars = |node: &str, vars: Vec<&str>, problems: &mut Vec<Problem>| {
        for v in vars {
            let mut parts = v.split('.');
            let root = parts.next().unwrap_or(v);
            let missing = if root == "params" {
                parts.next().is_some_and(|k| !def.params.contains_key(k))
            } else {
                !known.contains(root)
            };
            if missing {
                problems.push(Problem {
                    node: Some(node.to_owned()),
                    message: format!(
                        "reads `{v}`, but no input, parameter or node output provides `{}`",
                        if root == "params" { v } else { root }
                    ),
                });
            }
        }
    };

    // Nodes: references and templates.
    let mut nodes = HashMap::new();
    let mut joins: HashMap<String, u32> = HashMap::new();
    let mut join_owners: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut extra_edges: Vec<(&str, &str)> = Vec::new();
    for n in &def.nodes {
        let id = n.id.as_str();
        let mut compiled = CompiledNode {
            main: None,
            correlation: None,
            set: Vec::new(),
            compensate: None,
        };
        let template =
            |value: &serde_json::Value, problems: &mut Vec<Problem>| match Template::compile(value)
            {
                Ok(t) => {
                    check_vars(id, t.variables(), problems);
                    Some(t)
                }
                Err(e) => {
                    problems.push(Problem {
                        node: Some(id.to_owned()),
                        message: e.to_string(),
                    });
                    None
                }
            };
        match &n.kind {
            NodeKind::Tool { tool, args } => {
                if catalog.tools.as_ref().is_some_and(|t| !t.contains(tool)) {
                    push(&mut problems, Some(id), format!("unknown tool `{tool}`"));
                }
                compiled.main = template(args, &mut problems);
            }
            NodeKind::Agent { agent, input } => {
                if catalog.agents.as_ref().is_some_and(|a| !a.contains(agent)) {
                    push(&mut problems, Some(id), format!("unknown agent `{agent}`"));
                }
                compiled.main = template(&serde_json::Value::String(input.clone()), &mut problems);
            }
            NodeKind::Approval {
                payload, on_reject, ..
            } => {
                compiled.main = template(payload, &mut problems);
                if let Some(t) = on_reject {
                    extra_edges.push((id, t));
                }
            }
            NodeKind::WaitEvent {
                correlation,
                on_timeout,
                ..
            } => {
                compiled.correlation = template(
                    &serde_json::Value::String(correlation.clone()),
                    &mut problems,
                );
                if let Some(t) = on_timeout {
                    extra_edges.push((id, t));
                }
            }
            NodeKind::Parallel { branches, join } => {
                if branches.is_empty() {
                    push(
                        &mut problems,
                        Some(id),
                        "a parallel node needs at least one branch".into(),
                    );
                }
                for b in branches {
                    extra_edges.push((id, b));
                }
                match def.node(join) {
                    Some(j) if matches!(j.kind, NodeKind::Join {}) => {
                        joins.insert(
                            join.clone(),
                            u32::try_from(branches.len()).unwrap_or(u32::MAX),
                        );
                        join_owners.entry(join.as_str()).or_default().push(id);
                        extra_edges.push((id, join));
                    }
                    Some(_) => push(
                        &mut problems,
                        Some(id),
                        format!("`{join}` is not a join node"),
                    ),
                    None => push(
                        &mut problems,
                        Some(id),
                        format!("the join node `{join}` does not exist"),
                    ),
                }
                if def.edges_from(id).next().is_some() {
                    push(
                        &mut problems,
                        Some(id),
                        "a parallel node has no edges of its own; its branches and join continue"
                            .into(),
                    );
                }
            }
            NodeKind::SubWorkflow { input, .. } => compiled.main = template(input, &mut problems),
            NodeKind::Transform { set } => {
                for (k, v) in set {
                    if let Some(t) = template(v, &mut problems) {
                        compiled.set.push((k.clone(), t));
                    }
                }
            }
            NodeKind::Timer { .. }
            | NodeKind::Branch {}
            | NodeKind::Join {}
            | NodeKind::Snapshot { .. } => {}
        }
        if let Some(c) = &n.compensate {
            if catalog.tools.as_ref().is_some_and(|t| !t.contains(&c.tool)) {
                push(
                    &mut problems,
                    Some(id),
                    format!("unknown compensation tool `{}`", c.tool),
                );
            }
            compiled.compensate = template(&c.args, &mut problems);
        }
        if n.max_visits == Some(0) {
            push(
                &mut problems,
                Some(id),
                "max_visits is 0: the node could never run".into(),
            );
        }
        nodes.insert(n.id.clone(), compiled);
    }
    for (join, owners) in &join_owners {
        if owners.len() > 1 {
            push(
                &mut problems,
                Some(join),
                format!("the join is shared by parallel nodes {}", owners.join(", ")),
            );
        }
    }
    for n in &def.nodes {
        if matches!(n.kind, NodeKind::Join {}) && !join_owners.contains_key(n.id.as_str()) {
            push(
                &mut problems,
                Some(&n.id),
                "no parallel node joins here".into(),
            );
        }
    }

    // Edges.
    let mut edges: HashMap<String, Vec<(String, Option<Condition>)>> = HashMap::new();
    for e in &def.edges {
        if !ids.contains(e.from.as_str()) {
            push(
                &mut problems,
                None,
                format!("an edge starts at `{}`, which does not exist", e.from),
            );
            continue;
        }
        if !ids.contains(e.to.as_str()) {
            push(
                &mut problems,
                Some(&e.from),
                format!("an edge goes to `{}`, which does not exist", e.to),
            );
            continue;
        }
        let cond = match &e.when {
            None => None,
            Some(w) => match Condition::compile(w) {
                Ok(c) => {
                    check_vars(&e.from, c.variables().collect(), &mut problems);
                    Some(c)
                }
                Err(err) => {
                    push(&mut problems, Some(&e.from), err.to_string());
                    None
                }
            },
        };
        edges
            .entry(e.from.clone())
            .or_default()
            .push((e.to.clone(), cond));
    }
    for (from, to) in &extra_edges {
        if !ids.contains(to) {
            push(&mut problems, Some(from), format!("`{to}` does not exist"));
        }
    }

    // Reachability and cycles over the whole graph.
    let mut succ: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for e in &def.edges {
        if ids.contains(e.from.as_str()) && ids.contains(e.to.as_str()) {
            succ.entry(&e.from).or_default().insert(&e.to);
        }
    }
    for (from, to) in &extra_edges {
        if ids.contains(to) {
            succ.entry(from).or_default().insert(to);
        }
    }
    if ids.contains(def.start.as_str()) {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut stack = vec![def.start.as_str()];
        while let Some(n) = stack.pop() {
            if seen.insert(n) {
                stack.extend(succ.get(n).into_iter().flatten().copied());
            }
        }
        for n in &def.nodes {
            if !seen.contains(n.id.as_str()) && ids.contains(n.id.as_str()) {
                push(
                    &mut problems,
                    Some(&n.id),
                    "unreachable from the start node".into(),
                );
            }
        }
    }
    for scc in cycles(
        &def.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        &succ,
    ) {
        let inside: HashSet<&str> = scc.iter().copied().collect();
        let exits = scc.iter().any(|n| {
            succ.get(n)
                .into_iter()
                .flatten()
                .any(|t| !inside.contains(t))
        });
        let bounded = scc
            .iter()
            .any(|n| def.node(n).is_some_and(|n| n.max_visits.is_some()));
        if !exits && !bounded {
            let mut names: Vec<&str> = scc.clone();
            names.sort_unstable();
            push(
                &mut problems,
                Some(names[0]),
                format!(
                    "the cycle {} has no exit and no bound (set max_visits on one of its nodes)",
                    names.join(" → ")
                ),
            );
        }
    }

    if problems.is_empty() {
        Ok(CompiledWorkflow {
            def: def.clone(),
            nodes,
            edges,
            joins,
        })
    } else {
        Err(ValidationError {
            workflow: def.id.to_string(),
            version: def.version,
            problems,
        })
    }
}

fn push(problems: &mut Vec<Problem>, node: Option<&str>, message: String) {
    problems.push(Problem {
        node: node.map(str::to_owned),
        message,
    });
}

/// The strongly connected components that contain a cycle (Tarjan's algorithm, iterative).
fn cycles<'a>(nodes: &[&'a str], succ: &HashMap<&'a str, BTreeSet<&'a str>>) -> Vec<Vec<&'a str>> {
    struct Tarjan<'a, 'b> {
        succ: &'b HashMap<&'a str, BTreeSet<&'a str>>,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        on_stack: HashSet<&'a str>,
        stack: Vec<&'a str>,
        next: usize,
        out: Vec<Vec<&'a str>>,
    }
    impl<'a> Tarjan<'a, '_> {
        fn visit(&mut self, root: &'a str) {
            // (node, successors still to look at)
            let mut work: Vec<(&'a str, Vec<&'a str>)> = Vec::new();
            self.enter(root);
            work.push((
                root,
                self.succ.get(root).into_iter().flatten().copied().collect(),
            ));
            while let Some((v, mut rest)) = work.pop() {
                if let Some(w) = rest.pop() {
                    work.push((v, rest));
                    if !self.index.contains_key(w) {
                        self.enter(w);
                        work.push((w, self.succ.get(w).into_iter().flatten().copied().collect()));
                    } else if self.on_stack.contains(w) {
                        let lw = self.index[w];
                        let lv = self.low.get_mut(v).map_or(0, |l| {
                            *l = (*l).min(lw);
                            *l
                        });
                        let _ = lv;
                    }
                    continue;
                }
                // v is finished.
                if let Some((parent, _)) = work.last() {
                    let lv = self.low[v];
                    if let Some(lp) = self.low.get_mut(parent) {
                        *lp = (*lp).min(lv);
                    }
                }
                if self.low[v] == self.index[v] {
                    let mut scc = Vec::new();
                    while let Some(w) = self.stack.pop() {
                        self.on_stack.remove(w);
                        scc.push(w);
                        if w == v {
                            break;
                        }
                    }
                    let self_loop = self.succ.get(v).is_some_and(|s| s.contains(v));
                    if scc.len() > 1 || self_loop {
                        self.out.push(scc);
                    }
                }
            }
        }

        fn enter(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
        }
    }
    let mut t = Tarjan {
        succ,
        index: HashMap::new(),
        low: HashMap::new(),
        on_stack: HashSet::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for n in nodes {
        if !t.index.contains_key(n) {
            t.visit(n);
        }
    }
    t.out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn def(v: serde_json::Value) -> WorkflowDefinition {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_sound_workflow_compiles() {
        let d = def(json!({
            "id": "w", "version": 1, "start": "fan", "inputs": ["lead"],
            "params": {"threshold": 50},
            "nodes": [
                {"id": "fan", "kind": "parallel", "branches": ["a", "b"], "join": "j"},
                {"id": "a", "kind": "tool", "tool": "crm.get", "args": {"id": "${lead.id}"}},
                {"id": "b", "kind": "timer", "delay_ms": 10},
                {"id": "j", "kind": "join"},
                {"id": "retry", "kind": "branch", "max_visits": 3},
                {"id": "done", "kind": "transform", "set": {"ok": "${a.score > params.threshold}"}}
            ],
            "edges": [
                {"from": "a", "to": "j"}, {"from": "b", "to": "j"},
                {"from": "j", "to": "retry"},
                {"from": "retry", "to": "retry", "when": "ok == false"},
                {"from": "retry", "to": "done"}
            ]
        }));
        let catalog = Catalog {
            tools: Some(["crm.get".to_owned()].into()),
            agents: None,
        };
        let c = validate(&d, &catalog).unwrap();
        assert_eq!(c.joins["j"], 2);
    }

    #[test]
    fn every_problem_is_reported_with_its_node() {
        let d = def(json!({
            "id": "w", "version": 1, "start": "a",
            "nodes": [
                {"id": "a", "kind": "tool", "tool": "nope", "args": {"x": "${ghost.field}"}},
                {"id": "b", "kind": "branch"},
                {"id": "c", "kind": "branch"},
                {"id": "d", "kind": "agent", "agent": "stranger", "input": "hi"},
                {"id": "bad id!", "kind": "branch"},
                {"id": "e", "kind": "transform", "set": {"y": "${params.missing}"}}
            ],
            "edges": [
                {"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "b"},
                {"from": "a", "to": "zz"}, {"from": "a", "to": "d", "when": "(1"},
                {"from": "d", "to": "e"}
            ]
        }));
        let catalog = Catalog {
            tools: Some(HashSet::new()),
            agents: Some(HashSet::new()),
        };
        let err = validate(&d, &catalog).unwrap_err();
        let text = err.to_string();
        for needle in [
            "node `a`: unknown tool `nope`",
            "node `a`: reads `ghost.field`",
            "node `a`: an edge goes to `zz`",
            "no exit and no bound",
            "node `d`: unknown agent `stranger`",
            "node `bad id!`: a node id",
            "node `bad id!`: unreachable",
            "node `e`: reads `params.missing`",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
        assert!(
            text.contains("expression `(1`"),
            "a condition that does not parse is reported: {text}"
        );
    }
}
