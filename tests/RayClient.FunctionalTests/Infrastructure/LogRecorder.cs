using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace RayClient.FunctionalTests.Infrastructure;

/// <summary>
/// Keeps the most recent log lines of the client and the embedded server, so a test that fails
/// (rarely, under CI's load) can print what both sides saw instead of only its assertion.
/// </summary>
internal sealed class LogRecorder : ILoggerProvider
{
    private const int Capacity = 400;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly ConcurrentQueue<(int EventId, LogLevel Level, string Message)> _events = new();
    private readonly DateTimeOffset _start = DateTimeOffset.UtcNow;

    public LogRecorder()
    {
        Factory = LoggerFactory.Create(builder => builder
            .SetMinimumLevel(LogLevel.Debug)
            .AddFilter((category, level) => level >= (category?.StartsWith("RayClient", StringComparison.Ordinal) == true ? LogLevel.Debug : LogLevel.Warning))
            .AddProvider(this));
    }

    public ILoggerFactory Factory { get; }

    public ILogger CreateLogger(string categoryName) => new Recorder(this, categoryName[(categoryName.LastIndexOf('.') + 1)..]);

    /// <summary>The messages (formatted) of the recent events with id <paramref name="eventId"/>, oldest first.</summary>
    public IReadOnlyList<(LogLevel Level, string Message)> Events(int eventId) =>
        [.. _events.Where(e => e.EventId == eventId).Select(e => (e.Level, e.Message))];

    /// <summary>The recorded lines, oldest first.</summary>
    public string Dump() => string.Join(Environment.NewLine, _lines);

    public void Dispose()
    {
    }

    private void Add(string line, int eventId, LogLevel level, string message)
    {
        _lines.Enqueue(line);
        while (_lines.Count > Capacity && _lines.TryDequeue(out _))
        {
        }

        _events.Enqueue((eventId, level, message));
        while (_events.Count > Capacity && _events.TryDequeue(out _))
        {
        }
    }

    private sealed class Recorder(LogRecorder owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var elapsed = DateTimeOffset.UtcNow - owner._start;
            var message = formatter(state, exception);
            var line = $"{elapsed.TotalSeconds,8:0.000} {logLevel,-11} {category}[{eventId.Id}] {message}";
            owner.Add(exception is null ? line : $"{line}{Environment.NewLine}    {exception.GetType().Name}: {exception.Message}", eventId.Id, logLevel, message);
        }
    }
}
