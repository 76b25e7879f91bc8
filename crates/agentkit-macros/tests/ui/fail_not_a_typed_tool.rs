use agentkit_tools::GovernedTool;

struct LookupLead;

fn main() {
    let _ = GovernedTool::from_typed(LookupLead);
}
