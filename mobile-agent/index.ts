// Public surface of mobile-agent/ (filled in by its issue).
export {};
