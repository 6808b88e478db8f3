server "127.0.0.1", user: "root", roles: %w[web app db], port: ENV.fetch("BENCH_PORT").to_i
set :ssh_options, {
  keys: [ENV.fetch("BENCH_KEY")],
  user_known_hosts_file: ENV.fetch("BENCH_KNOWN_HOSTS"),
  verify_host_key: :always,
  auth_methods: %w[publickey],
}
