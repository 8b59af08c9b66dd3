// Every random choice the radio makes (advertising delay, packet loss, RSSI fading,
// jitter) draws from the project's one seeded generator, so a run is reproducible from
// the same seed that drives keys, clocks and faults elsewhere.
export { SeededRandom } from '../protocol/random';
