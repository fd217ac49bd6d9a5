"""What the benchmarks and the tests both drive: a running dart on any wiring (``stacks``), its REST client
(``api_client``), throw-away PostgreSQL databases (``pg``), a moto server on loopback (``moto``) and the ECS
agent that runs moto's tasks (``ecs_agent``). It lives under bench/ so that benchmarks import no test
module; tests import it from here. Nothing here imports pytest."""
