// Public surface of radio/ (filled in by its issue).
export {};
