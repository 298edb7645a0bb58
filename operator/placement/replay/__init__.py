"""`placement replay`: the operator's plans on a simulation, series, traces, reports. Pure."""
