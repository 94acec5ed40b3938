using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RayClient.Server.Services;

namespace RayClient.Server;

/// <summary>
/// The embedded Ray client server: Ray's client protocol (gRPC, HTTP/2 cleartext) on loopback,
/// running Python functions in local <c>python3</c> worker processes (standard library only). It
/// lets a user without a cluster try everything, and it is the fixture of RayClient's own tests.
/// It is one machine, not a cluster: beyond it, connect to a real Ray cluster.
/// </summary>
public sealed class LocalRayServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ServerState _state;
    private readonly WorkDirectory _workDirectory;
    private int _disposed;

    private readonly Jobs.JobManager _jobs;
    private readonly Jobs.JobsApi _jobsApi;

    private LocalRayServer(WebApplication app, ServerState state, ServerFaults faults, WorkDirectory workDirectory, int port, string host, Jobs.JobManager jobs, Jobs.JobsApi jobsApi)
    {
        _app = app;
        _jobs = jobs;
        _jobsApi = jobsApi;
        DashboardPort = jobsApi.Port;
        DashboardAddress = $"http://{(host.Contains(':', StringComparison.Ordinal) ? $"[{host}]" : host)}:{jobsApi.Port}";
        Faults = faults;
        _state = state;
        _workDirectory = workDirectory;
        Port = port;
        Address = $"ray://{(host.Contains(':', StringComparison.Ordinal) ? $"[{host}]" : host)}:{port}";
    }

    /// <summary>The <c>ray://</c> address clients connect to.</summary>
    public string Address { get; }

    /// <summary>The TCP port the server listens on.</summary>
    public int Port { get; }

    /// <summary>The IP address the server listens on.</summary>
    public IPAddress ListenAddress { get; private init; } = IPAddress.Loopback;

    /// <summary>Whether clients must connect with TLS.</summary>
    public bool UsesTls { get; private init; }

    /// <summary>Whether clients must send the token.</summary>
    public bool RequiresToken { get; private init; }

    /// <summary>The TCP port of the Ray Jobs REST API.</summary>
    public int DashboardPort { get; }

    /// <summary>The <c>http://</c> address of the Ray Jobs REST API (what <c>ray job submit --address</c> takes).</summary>
    public string DashboardAddress { get; }

    /// <summary>Where job records and driver logs are kept.</summary>
    public string DataDirectory => _jobs.DataDirectory;

    /// <summary>Fault-injection hooks for tests (internal: not part of the package API).</summary>
    internal ServerFaults Faults { get; }

    /// <summary>How many times a task body was started in a worker (a retried task counts twice).</summary>
    public long TaskExecutions => _state.Engine.Scheduler.Executions;

    /// <summary>Objects in the store.</summary>
    public int ObjectCount => _state.Store.Count;

    /// <summary>Client sessions alive on the server (connected or within their grace period).</summary>
    public int SessionCount => _state.Sessions.Count;

    /// <summary>Python worker processes alive.</summary>
    public int WorkerCount => _state.Engine.Pool.Count;

    /// <summary>Process ids of the live Python workers (to kill one in a test).</summary>
    public IReadOnlyList<int> WorkerProcessIds => _state.Engine.Pool.Snapshot().Select(w => w.Pid).ToList();

    /// <summary>Where the server unpacks packages and keeps virtual envs (deleted at dispose unless the options named it).</summary>
    public string WorkDirectoryPath => _workDirectory.Path;

    internal ServerState State => _state;

    /// <summary>Token and TLS settings; the server owns the certificates in it.</summary>
    internal ServerSecurity Security { get; private init; } = null!;

    /// <summary>Starts a server; with the default options it listens on a free loopback port.</summary>
    /// <exception cref="LocalRayServerListenException">The Ray client port or the Jobs API port cannot be listened on (e.g. another process has it).</exception>
    public static async Task<LocalRayServer> StartAsync(LocalRayServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new LocalRayServerOptions();
        options.Validate();
        var listenAddress = await options.ResolveListenAddressAsync(cancellationToken).ConfigureAwait(false);
        var security = ServerSecurity.Resolve(options, listenAddress);

        // Everything started so far; a failure anywhere below stops and deletes all of it, so a
        // server that does not start leaves no listener, worker, work directory or certificate.
        WorkDirectory? workDirectory = null;
        ServerState? state = null;
        WebApplication? app = null;
        Jobs.JobManager? jobs = null;
        try
        {
            if (options.WorkDirectory is { } chosen)
            {
                workDirectory = WorkDirectory.Borrowed(chosen);
            }
            else
            {
                // Directories of servers that were killed (SIGKILL, a crash) go first.
                var root = options.WorkDirectoryRoot ?? WorkDirectory.Root;
                WorkDirectory.SweepStale(root);
                workDirectory = WorkDirectory.CreateOwned(root);
            }

            var loggerFactory = options.LoggerFactory ?? NullLoggerFactory.Instance;
            state = new ServerState(options, workDirectory.Path, loggerFactory.CreateLogger("RayClient.Server"));
            var faults = new ServerFaults();
            app = BuildApp(options, listenAddress, security, state, faults);
            try
            {
                await app.StartAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException ex)
            {
                throw LocalRayServerListenException.For("Ray clients", "LocalRayServerOptions.Port, rayclient start --port", listenAddress, options.Port, ex);
            }

            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
            var port = new Uri(addresses.First()).Port;
            // Job drivers connect back here: a wildcard bind is reached through loopback.
            var clientHost = listenAddress.Equals(IPAddress.Any) ? IPAddress.Loopback : listenAddress.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback : listenAddress;
            var host = clientHost.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{clientHost}]" : clientHost.ToString();
            state.ClientAddress = $"ray://{host}:{port}";
            jobs = new Jobs.JobManager(state, options.DataDirectory ?? Path.Combine(workDirectory.Path, "data"), loggerFactory.CreateLogger("RayClient.Server.Jobs"));
            var jobsApi = await Jobs.JobsApi.StartAsync(state, jobs, listenAddress, security, options.DashboardPort, options.LoggerFactory, cancellationToken).ConfigureAwait(false);
            jobs.DashboardAddress = $"http://{host}:{jobsApi.Port}";
            return new LocalRayServer(app, state, faults, workDirectory, port, listenAddress.ToString(), jobs, jobsApi)
            {
                ListenAddress = listenAddress,
                UsesTls = security.Certificate is not null,
                RequiresToken = security.RequiresToken,
                Security = security,
            };
        }
        catch
        {
            await CleanUpFailedStartAsync(jobs, app, state, security, workDirectory).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Undoes a start that failed, in <see cref="DisposeAsync"/>'s order; the start's error is what the caller sees.</summary>
    private static async Task CleanUpFailedStartAsync(Jobs.JobManager? jobs, WebApplication? app, ServerState? state, ServerSecurity security, WorkDirectory? workDirectory)
    {
        state?.BeginStop();
        if (jobs is not null)
        {
            await jobs.DisposeAsync().ConfigureAwait(false);
        }

        if (app is not null)
        {
            try
            {
                using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await app.StopAsync(stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            await app.DisposeAsync().ConfigureAwait(false);
        }

        if (state is not null)
        {
            await state.DisposeAsync().ConfigureAwait(false);
        }

        security.Dispose();
        workDirectory?.Dispose();
    }

    private static WebApplication BuildApp(LocalRayServerOptions options, IPAddress listenAddress, ServerSecurity security, ServerState state, ServerFaults faults)
    {
        // The empty builder: no appsettings files (and no file watchers on the working directory).
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore();
        builder.Services.AddRoutingCore();
        // A library does not take the process's signals (the host's default ConsoleLifetime would
        // swallow SIGINT/SIGTERM of whatever process embeds the server); rayclient start handles them.
        builder.Services.AddSingleton<IHostLifetime, EmbeddedLifetime>();
        builder.Services.AddLogging();
        if (options.LoggerFactory is not null)
        {
            builder.Services.AddSingleton(options.LoggerFactory);
        }

        builder.Services.AddSingleton(state);
        builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>, BoundedMemoryPoolFactory>();
        builder.Services.AddSingleton(faults);
        builder.Services.AddSingleton<Grpc.AspNetCore.Server.Model.IServiceMethodProvider<DataStreamerService>, DatapathMethodProvider>();
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = null;
            o.MaxSendMessageSize = null;
            o.EnableDetailedErrors = true;
        });
        // Unary requests (KVPut the largest) are refused by their length prefix before they are
        // buffered when over the KV limit (plus room for the key): a 2 GiB KVPut never reaches memory.
        builder.Services.AddGrpc().AddServiceOptions<DriverService>(o =>
            o.MaxReceiveMessageSize = (int)Math.Min(int.MaxValue, options.MaxKvValueSize + (1024 * 1024)));
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = null;
            // No minimum body rate: on a loaded machine a large KVPut or put stalls for seconds at a
            // time, and Kestrel would reset the whole connection (every stream of the session).
            kestrel.Limits.MinRequestBodyDataRate = null;
            // Large windows and frames: 100 MiB objects must not stall on flow control.
            kestrel.Limits.Http2.InitialStreamWindowSize = 32 * 1024 * 1024;
            kestrel.Limits.Http2.InitialConnectionWindowSize = 64 * 1024 * 1024;
            kestrel.Limits.Http2.MaxFrameSize = 1024 * 1024;
            kestrel.Limits.Http2.MaxStreamsPerConnection = 1000;
            kestrel.Limits.KeepAliveTimeout = TimeSpan.FromDays(1);
            kestrel.Limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(30);
            kestrel.Limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(60);
            kestrel.Listen(listenAddress, options.Port, listen =>
            {
                listen.Protocols = HttpProtocols.Http2;
                security.ConfigureEndpoint(listen);
            });
        });

        var app = builder.Build();
        if (security.RequiresToken)
        {
            app.Use(security.AuthenticateAsync);
        }
        app.MapGrpcService<DriverService>();
        app.MapGrpcService<DataStreamerService>();
        app.MapGrpcService<LogStreamerService>();
        return app;
    }

    /// <summary>
    /// Stops the server within a few seconds: refuses new sessions, ends every open stream (clients
    /// see the connection end), stops the workers and deletes the work directory it created.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _state.BeginStop();
        Faults.CutAllStreams(); // Kestrel's graceful stop would otherwise wait for every Datapath to end
        await _jobsApi.DisposeAsync().ConfigureAwait(false);
        await _jobs.DisposeAsync().ConfigureAwait(false);
        try
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await _app.StopAsync(stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        await _app.DisposeAsync().ConfigureAwait(false);
        await _state.DisposeAsync().ConfigureAwait(false);
        Security.Dispose(); // after Kestrel and the Jobs API, which serve with it
        _workDirectory.Dispose();
    }

    /// <summary>A host lifetime that leaves process signals alone.</summary>
    internal sealed class EmbeddedLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
