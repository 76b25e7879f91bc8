//! [`ToolSet`]: tools by name with their schemas compiled once.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::tool::{Tool, ToolSpec};
use crate::validation::CompiledSchema;

/// One tool with its compiled argument and output validators.
pub struct ToolEntry {
    tool: Arc<dyn Tool>,
    validator: CompiledSchema,
    output_validator: Option<CompiledSchema>,
}

impl ToolEntry {
    /// Compiles the tool's schemas; [`Error::InvalidConfig`] naming the tool when its spec is
    /// invalid or a schema does not compile.
    pub fn new(tool: Arc<dyn Tool>) -> Result<Self> {
        let spec = tool.spec();
        spec.validate()?;
        let validator = CompiledSchema::compile_named(
            &format!("tool `{}` argument schema", spec.name),
            &spec.parameters,
        )?;
        let output_validator = spec
            .output_schema
            .as_ref()
            .map(|s| CompiledSchema::compile_named(&format!("tool `{}` output", spec.name), s))
            .transpose()?;
        Ok(Self {
            tool,
            validator,
            output_validator,
        })
    }

    /// The tool.
    pub fn tool(&self) -> &Arc<dyn Tool> {
        &self.tool
    }

    /// The tool's spec.
    pub fn spec(&self) -> &ToolSpec {
        self.tool.spec()
    }

    /// The compiled argument schema.
    pub fn validator(&self) -> &CompiledSchema {
        &self.validator
    }

    /// The compiled output schema, when the tool declares one.
    pub fn output_validator(&self) -> Option<&CompiledSchema> {
        self.output_validator.as_ref()
    }
}

impl std::fmt::Debug for ToolEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolEntry")
            .field("name", &self.spec().name)
            .finish_non_exhaustive()
    }
}

/// The tools one executor may run, by name, in registration order for the model.
///
/// ```
/// use std::sync::Arc;
/// use agentkit_core::exec::ToolSet;
/// use agentkit_core::tool::{FnTool, Tool, ToolSpec};
/// use serde_json::json;
///
/// let echo: Arc<dyn Tool> = Arc::new(FnTool::new(
///     ToolSpec::new("get_weather", "Weather for a city", json!({"type": "object"})),
///     |_ctx, args| async move { Ok(args) },
/// ));
/// let set = ToolSet::new([echo])?;
/// assert!(set.get("get_weather").is_some());
/// assert_eq!(set.specs().len(), 1);
/// # Ok::<(), agentkit_core::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct ToolSet {
    by_name: HashMap<String, ToolEntry>,
    specs: Vec<ToolSpec>,
}

impl ToolSet {
    /// Compiles every tool; [`Error::InvalidConfig`] on an invalid spec, a schema that does not
    /// compile, or two tools with one name.
    pub fn new(tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Result<Self> {
        let mut set = Self::default();
        for tool in tools {
            set.insert(ToolEntry::new(tool)?)?;
        }
        Ok(set)
    }

    /// Adds a compiled tool; [`Error::InvalidConfig`] when the name is taken.
    pub fn insert(&mut self, entry: ToolEntry) -> Result<()> {
        let name = entry.spec().name.clone();
        if self.by_name.contains_key(&name) {
            return Err(Error::InvalidConfig(format!(
                "two tools are named `{name}`"
            )));
        }
        self.specs.push(entry.spec().clone());
        self.by_name.insert(name, entry);
        Ok(())
    }

    /// A tool by name.
    pub fn get(&self, name: &str) -> Option<&ToolEntry> {
        self.by_name.get(name)
    }

    /// The specs, in insertion order (what the model is offered).
    pub fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    /// How many tools.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }
}
