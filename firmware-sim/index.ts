// Public surface of firmware-sim/ (filled in by its issue).
export {};
