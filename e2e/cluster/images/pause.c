/*
 * The pod sandbox ("pause") process: PID 1 of every pod, holding its namespaces open.
 * It sleeps until SIGTERM or SIGINT and reaps any zombie re-parented to it, like the upstream pause.
 * Built statically by up.sh (gcc -static) and packed as mcp-guard.local/pause by pack-image.sh,
 * because no registry image can be pulled here.
 */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = stop;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = reap;
  sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  sigaction(SIGCHLD, &sa, NULL);
  for (;;) pause();
}
