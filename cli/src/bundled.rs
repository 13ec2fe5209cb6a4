//! Data compiled into the binary so that `nanu demo` and `nanu replay` work from anywhere.
//! Sources and licenses: `cli/data/ATTRIBUTION.md`.

/// LiteLLM 1.110.2's model price table (MIT).
pub const PRICES: &str = include_str!("../data/litellm-model-prices-1.110.2.json");

/// The name the price table is shown under.
pub const PRICES_NAME: &str = "litellm-model-prices-1.110.2.json";

/// One hour of the Azure LLM inference trace, conversation service (CC-BY 4.0).
pub const CONV_TRACE: &str = include_str!("../data/azure-llm-trace-2023-conv.csv");

/// The name the trace is shown under.
pub const CONV_TRACE_NAME: &str = "azure-llm-trace-2023-conv.csv";
