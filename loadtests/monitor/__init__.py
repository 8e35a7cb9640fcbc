"""Target and generator monitoring: process trees, sockets and host limits, locally or through
`mailswarm agent` over HTTP. Imports neither gevent nor locust (samples run in native threads)."""

from loadtests.monitor.agent import AgentError, fetch_agent_doctor, fetch_agent_sample
from loadtests.monitor.sampler import Sampler, targets_of

__all__ = ["AgentError", "Sampler", "fetch_agent_doctor", "fetch_agent_sample", "targets_of"]
