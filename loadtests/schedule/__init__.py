"""The schedule layer: *when* sessions start, apart from what a session does.

- `arrivals`: pure arrival-time generators of the open model (fixed, Poisson, bursts);
- `population`: the seed's population model (users x checks / peak window -> a rate);
- `pacing`: the open-model pacer that hands out start tokens and counts late and dropped ones;
- `ceiling`: the ceiling search (a Locust `LoadTestShape` stepping users up to a failing step);
- `loadplan`: a profile's Locust user classes and pacers, the same in every process;
- `sessions`: open sessions per protocol in this process (the gauge sampled into ticks).
"""
