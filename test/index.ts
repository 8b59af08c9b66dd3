// Public surface of test/ (filled in by its issue).
export {};
