using Grpc.Net.Client;

namespace RayClient.Session;

/// <summary>The one place a session's gRPC channel (HTTP/2 transport, keepalive, limits) is created.</summary>
internal static class RayChannelFactory
{
    public static GrpcChannel Create(ConnectionSettings settings) =>
        GrpcChannel.ForAddress(settings.Address.ToHttpUri(settings.UseTls), new GrpcChannelOptions
        {
            HttpHandler = settings.Tls.Apply(new SocketsHttpHandler
            {
                KeepAlivePingDelay = settings.KeepAlivePingDelay,
                KeepAlivePingTimeout = settings.KeepAlivePingTimeout,
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
                // .NET honours system proxies by default; Ray disables gRPC proxies unless asked (spec §2.2).
                UseProxy = settings.UseProxy,
                EnableMultipleHttp2Connections = true,
                ConnectTimeout = settings.ConnectTimeout,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                InitialHttp2StreamWindowSize = 8 * 1024 * 1024,
            }),
            // Ray sets 2 GiB limits; older servers send 64 MiB chunks (ray-versions.md row 14).
            MaxReceiveMessageSize = null,
            MaxSendMessageSize = null,
            DisposeHttpClient = true,
        });
}
