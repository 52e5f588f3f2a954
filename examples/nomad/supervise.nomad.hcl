# supervise as a Nomad task with the exec driver: Nomad isolates the task
# (chroot, cgroups, its own /tmp) and supervise runs the task's programs
# inside it, with restarts, watchdogs and an ordered teardown.
#
# The binary is taken from the client's file system (the exec driver's
# chroot includes /usr/local/bin); install it there, or fetch it with an
# `artifact` block.
#
#   nomad job run examples/nomad/supervise.nomad.hcl

job "supervise" {
  type = "service"

  group "app" {
    count = 1

    # Nomad restarts the task when supervise itself exits with a failure
    # (a critical program's code, or force_exit_code); supervise restarts
    # the programs.
    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    network {
      port "metrics" {
        static = 9100
      }
    }

    task "supervise" {
      driver = "exec"
      user   = "nobody"

      config {
        command = "/usr/local/bin/supervise"
        args    = ["run", "-c", "${NOMAD_TASK_DIR}/supervise.toml"]
      }

      # SIGTERM starts the teardown; Nomad sends SIGKILL after kill_timeout,
      # so it must exceed shutdown_timeout below. (A client caps it at its
      # max_kill_timeout, 30s by default.)
      kill_signal  = "SIGTERM"
      kill_timeout = "25s"

      template {
        destination = "local/supervise.toml"
        change_mode = "noop" # supervise applies edits of the file itself (watch_config)
        data        = <<-EOT
          [supervisor]
          log_format = "json"
          heartbeat_file = "/tmp/supervise/heartbeat.json"
          heartbeat_interval = "5s"
          shutdown_timeout = "20s"
          metrics = "0.0.0.0:9100"

          [programs.app]
          command = ["/bin/sh", "-c", "echo app started; exec sleep 2147483647"]

          [programs.worker]
          command = ["/bin/sh", "-c", "while :; do touch /tmp/worker.beat; sleep 5; done"]

          [programs.worker.watchdog]
          heartbeat_file = "/tmp/worker.beat"
          timeout = "15s"
        EOT
      }

      # Health: Nomad's own check on the supervisor's /healthz (200 while
      # its event loop answers). `supervise check` works the same way in a
      # Consul script check.
      service {
        name     = "supervise"
        provider = "nomad"
        port     = "metrics"

        check {
          type     = "http"
          path     = "/healthz"
          interval = "10s"
          timeout  = "2s"
        }
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
