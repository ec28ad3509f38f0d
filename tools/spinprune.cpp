// Placeholder main so the build links while the CLI is being written.
int main() { return 0; }
