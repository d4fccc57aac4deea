-- refresh_engagement_compliance's priority sub-selects raise its estimated cost past jit_above_cost, and
-- PostgreSQL then JIT-compiles the UPDATE on every call: about 28 ms of compilation for a statement that runs
-- in 5, so 100 tenants' refreshes took 3.3 s instead of 0.3 (docs/benchmarks.md). The statement is short and
-- index-driven; it never gains from JIT.
alter function public.refresh_engagement_compliance(uuid) set jit = off;
