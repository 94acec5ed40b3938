using System.Net;
using System.Net.Sockets;

namespace RayClient.Server.Testing;

/// <summary>
/// A TCP proxy on loopback between client and server that tests and benchmarks control: cut every
/// connection, black-hole traffic (stop forwarding without closing), refuse new connections,
/// re-point it at another server. Real sockets, real faults: the client's HTTP/2 connection breaks
/// exactly as on a bad network. Internal: a test hook, reached by the test and benchmark projects only.
/// </summary>
internal sealed class FaultProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _lock = new();
    private readonly List<Connection> _connections = [];
    private readonly Task _acceptLoop;
    private volatile bool _refuse;
    private volatile TaskCompletionSource _flowing = CompletedGate();
    private int _accepted;

    /// <summary>Starts forwarding a free loopback port to <paramref name="targetPort"/>.</summary>
    public FaultProxy(int targetPort)
    {
        _target = new IPEndPoint(IPAddress.Loopback, targetPort);
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _acceptLoop = AcceptLoopAsync();
    }

    /// <summary>The proxy's own port.</summary>
    public int Port { get; }

    /// <summary>The <c>ray://</c> address of the proxy.</summary>
    public string Address => $"ray://127.0.0.1:{Port}";

    /// <summary>The server port new connections are forwarded to (change it to simulate a server restart elsewhere).</summary>
    public int TargetPort
    {
        get => _target.Port;
        set => _target = new IPEndPoint(IPAddress.Loopback, value);
    }

    /// <summary>Connections accepted so far.</summary>
    public int Accepted => Volatile.Read(ref _accepted);

    /// <summary>Closes every open connection at once (both directions, with a reset).</summary>
    public int CutAll()
    {
        List<Connection> open;
        lock (_lock)
        {
            open = [.. _connections];
            _connections.Clear();
        }

        foreach (var connection in open)
        {
            connection.Abort();
        }

        return open.Count;
    }

    /// <summary>Stops forwarding bytes (connections stay open, nothing arrives) until <see cref="Resume"/>.</summary>
    public void BlackHole() => _flowing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Forwards again after <see cref="BlackHole"/>.</summary>
    public void Resume() => _flowing.TrySetResult();

    /// <summary>Refuses (closes at once) new connections while true.</summary>
    public bool RefuseNewConnections
    {
        get => _refuse;
        set => _refuse = value;
    }

    private static TaskCompletionSource CompletedGate()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        gate.SetResult();
        return gate;
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException || (ex is SocketException && _stop.IsCancellationRequested))
            {
                return;
            }
            catch (SocketException)
            {
                // A client reset its connection before it was accepted (ECONNABORTED), e.g. a
                // reconnect attempt given up during a cut: the proxy keeps accepting. Returning
                // here would leave every later reconnect without a proxy.
                continue;
            }

            try
            {
                await ConnectUpstreamAsync(client).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // One connection failed while being set up (reset by either side): drop it, keep accepting.
                client.Dispose();
            }
        }
    }

    /// <summary>Connects one accepted client to the target and starts pumping (closes it when refusing or the target is down).</summary>
    private async Task ConnectUpstreamAsync(Socket client)
    {
        if (_refuse)
        {
            client.LingerState = new LingerOption(true, 0);
            client.Close();
            return;
        }

        Interlocked.Increment(ref _accepted);
        var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            client.NoDelay = true;
            await server.ConnectAsync(_target, _stop.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            client.Close();
            server.Dispose();
            return;
        }

        var connection = new Connection(client, server);
        lock (_lock)
        {
            _connections.Add(connection);
        }

        _ = PumpAsync(connection, client, server);
        _ = PumpAsync(connection, server, client);
    }

    private async Task PumpAsync(Connection connection, Socket from, Socket to)
    {
        var buffer = new byte[256 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                await _flowing.Task.WaitAsync(_stop.Token).ConfigureAwait(false); // black hole: hold the bytes back
                if (connection.IsAborted)
                {
                    return; // bytes held during a black hole die with the cut connection
                }

                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stop.Token).ConfigureAwait(false);
            }

            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            connection.Abort();
        }
    }

    /// <summary>Stops the proxy and closes every connection.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        Resume();
        CutAll();
        try
        {
            await _acceptLoop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
    }

    private sealed class Connection(Socket client, Socket server)
    {
        private int _aborted;

        public bool IsAborted => Volatile.Read(ref _aborted) != 0;

        public void Abort()
        {
            if (Interlocked.Exchange(ref _aborted, 1) != 0)
            {
                return;
            }

            foreach (var socket in new[] { client, server })
            {
                try
                {
                    socket.LingerState = new LingerOption(true, 0); // RST, like a dropped network
                    socket.Close();
                }
                catch (ObjectDisposedException)
                {
                }
            }
        }
    }
}
