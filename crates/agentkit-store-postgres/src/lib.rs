//! agentkit store on postgres (in progress).
