//! agentkit store on sqlite (in progress).
