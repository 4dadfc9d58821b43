/* placeholder: main.c is being written */
int main(void) { return 0; }
