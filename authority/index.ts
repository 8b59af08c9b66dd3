// Public surface of authority/ (filled in by its issue).
export {};
