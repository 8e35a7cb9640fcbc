"""mailswarm: a load-generation benchmark harness for mail servers, on Locust.

Layers, each measurement flowing one way: profile -> schedule -> users -> clients -> results
stream -> analysis -> report. `loadtests.clients` are asyncio protocol clients that know nothing
of Locust; `loadtests.users` are thin Locust users; `loadtests.bridge` joins the two worlds.
"""

__version__ = "0.1.0"
