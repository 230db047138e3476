"""Several balancer replicas behind one L4 load balancer, coordinating
through Redis: who is alive (leases), backend admin changes every replica
applies, shared room on each backend, and events that reach a client's
socket whichever replica holds it.

Time is the replicas' wall clock, passed in (tests inject it); a lease or a
reservation is judged by the time written into Redis, so replicas need
clocks in step to well under a lease (NTP keeps them within milliseconds).
Redis key TTLs only collect what nobody cleans up.
"""
