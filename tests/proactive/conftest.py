from tests.channels.conftest import graph, graph_client  # noqa: F401 - the Graph API stand-in's fixtures
