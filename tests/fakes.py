"""The fakes live in the package (voicebridge.testing) so benchmarks and users can reuse them."""
from voicebridge.testing import Closed, FakeRealtime, FakeTwilio, start_session  # noqa: F401
