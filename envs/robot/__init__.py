"""Robot worlds: MuJoCo Fetch and panda-gym behind one interface, their camera, arm primitives, live source."""
