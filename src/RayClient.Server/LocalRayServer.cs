using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
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
    private readonly string _workDirectory;
    private readonly bool _ownsWorkDirectory;
    private int _disposed;

    private LocalRayServer(WebApplication app, ServerState state, ServerFaults faults, string workDirectory, bool ownsWorkDirectory, int port, string host)
    {
        _app = app;
        Faults = faults;
        _state = state;
        _workDirectory = workDirectory;
        _ownsWorkDirectory = ownsWorkDirectory;
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

    /// <summary>Fault-injection hooks for tests.</summary>
    public ServerFaults Faults { get; }

    /// <summary>How many times a task body was started in a worker (a retried task counts twice).</summary>
    public long TaskExecutions => _state.Scheduler.Executions;

    /// <summary>Objects in the store.</summary>
    public int ObjectCount => _state.Store.Count;

    /// <summary>Client sessions alive on the server (connected or within their grace period).</summary>
    public int SessionCount => _state.Sessions.Count;

    /// <summary>Python worker processes alive.</summary>
    public int WorkerCount => _state.Pool.Count;

    /// <summary>Process ids of the live Python workers (to kill one in a test).</summary>
    public IReadOnlyList<int> WorkerProcessIds => _state.Pool.Snapshot().Select(w => w.Pid).ToList();

    internal ServerState State => _state;

    /// <summary>Starts a server; with the default options it listens on a free loopback port.</summary>
    public static async Task<LocalRayServer> StartAsync(LocalRayServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new LocalRayServerOptions();
        options.Validate();
        var listenAddress = await options.ResolveListenAddressAsync(cancellationToken).ConfigureAwait(false);
        var security = ServerSecurity.Resolve(options, listenAddress);
        var ownsWorkDirectory = options.WorkDirectory is null;
        var workDirectory = options.WorkDirectory ?? Path.Combine(Path.GetTempPath(), "rayclient-server", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(workDirectory);
        var loggerFactory = options.LoggerFactory ?? NullLoggerFactory.Instance;
        var state = new ServerState(options, workDirectory, loggerFactory.CreateLogger("RayClient.Server"));

        // The empty builder: no appsettings files (and no file watchers on the working directory).
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore();
        builder.Services.AddRoutingCore();
        builder.Services.AddLogging();
        if (options.LoggerFactory is not null)
        {
            builder.Services.AddSingleton(options.LoggerFactory);
        }

        builder.Services.AddSingleton(state);
        var faults = new ServerFaults();
        builder.Services.AddSingleton(faults);
        builder.Services.AddSingleton<Grpc.AspNetCore.Server.Model.IServiceMethodProvider<DataStreamerService>, DatapathMethodProvider>();
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = null;
            o.MaxSendMessageSize = null;
            o.EnableDetailedErrors = true;
        });
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = null;
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
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await state.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        var port = new Uri(addresses.First()).Port;
        return new LocalRayServer(app, state, faults, workDirectory, ownsWorkDirectory, port, listenAddress.ToString())
        {
            ListenAddress = listenAddress,
            UsesTls = security.Certificate is not null,
            RequiresToken = security.RequiresToken,
        };
    }

    /// <summary>Stops the server, its sessions and its workers.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _app.StopAsync(stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        await _app.DisposeAsync().ConfigureAwait(false);
        await _state.DisposeAsync().ConfigureAwait(false);
        if (_ownsWorkDirectory)
        {
            try
            {
                Directory.Delete(_workDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }
}
