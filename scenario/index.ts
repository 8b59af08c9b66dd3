// Public surface of scenario/: the QA scenario file format (what the runner consumes)
// and the run trace and HTML timeline (what it produces).
export * from './schema';
export { ScenarioError, validateScenario, DEFAULT_SEED, DEFAULT_START, DEFAULT_LOCK_POLICY_SPEC, DEFAULT_UPLINK_INTERVAL_SECONDS, AT_DOOR_METRES, type ScenarioIssue } from './validate';
export { loadScenario, parseScenarioText, pathSegments, MAX_SCENARIO_BYTES, type ScenarioFormat } from './load';
export { resolveAt, parseDurationMs, parseIsoInZone, localDateTime, zonedToEpochMs, zoneOffsetMs, isValidTimeZone, formatDuration } from './time';
export * from './trace';
export { renderTimeline, escapeXml, layoutRows, type TimelineOptions } from './timeline';
export { runScenario, replayCommand, describeAction, type RunOptions, type RunResult, type ExpectationResult, type ScenarioTransport } from './runner';
export { registerScenarioCommands, SCENARIO_DIR } from './cli';
