// Ends as `limit_exceeded`: a loop that swallows every error, even the engine's termination, is still
// stopped by the CPU time limit.
while (true) {
  try {
    while (true) {}
  } catch (e) {
    // keep going
  }
}
