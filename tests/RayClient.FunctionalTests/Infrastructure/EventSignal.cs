using Microsoft.Extensions.Logging;

namespace RayClient.FunctionalTests.Infrastructure;

/// <summary>A logger factory whose <see cref="Task"/> completes the first time an event with a given id is logged.</summary>
internal sealed class EventSignal : ILoggerProvider
{
    private readonly int _eventId;
    private readonly TaskCompletionSource _seen = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public EventSignal(int eventId)
    {
        _eventId = eventId;
        Factory = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(this));
    }

    public ILoggerFactory Factory { get; }

    public Task Seen => _seen.Task;

    public int Count;

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose()
    {
    }

    private sealed class Logger(EventSignal owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id == owner._eventId)
            {
                Interlocked.Increment(ref owner.Count);
                owner._seen.TrySetResult();
            }
        }
    }
}
