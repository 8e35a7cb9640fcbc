"""Target and generator monitoring: process trees, sockets and host limits, locally or through
`mailswarm agent` over HTTP. Imports neither gevent nor locust (samples run in native threads),
except `run`: the run's once-a-second sampling into the results stream, on gevent, and `lag`:
the generator's own event-loop and session start lag it samples."""

from loadtests.monitor.agent import AgentError, fetch_agent_doctor, fetch_agent_sample
from loadtests.monitor.groups import monitor_groups, target_ports
from loadtests.monitor.sampler import Sampler

__all__ = ["AgentError", "Sampler", "fetch_agent_doctor", "fetch_agent_sample", "monitor_groups",
           "target_ports"]
