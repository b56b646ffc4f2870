{#- The few places where DuckDB and Spark SQL differ, each dispatched on the adapter:
    `default__` is the DuckDB spelling (dbt-duckdb), `spark__` the Spark SQL one (dbt-spark).
    Everything else in the models is SQL both engines read the same way. -#}

{#- The lake's clean events, with event_date (a date) from the hive partition folders. -#}
{% macro lake_events() -%}
    {{ return(adapter.dispatch('lake_events', 'cartpulse')()) }}
{%- endmacro %}

{% macro default__lake_events() -%}
    read_parquet(
        '{{ var("lake_dir") }}/events/*/*.parquet',
        hive_partitioning = true,
        hive_types = {'event_date': date}
    )
{%- endmacro %}

{% macro spark__lake_events() -%}
    parquet.`{{ var("lake_dir") }}/events`
{%- endmacro %}

{#- One row per lake file: its path (file_name) and row count (num_rows). -#}
{% macro lake_files() -%}
    {{ return(adapter.dispatch('lake_files', 'cartpulse')()) }}
{%- endmacro %}

{% macro default__lake_files() -%}
    select file_name, num_rows
    from parquet_file_metadata('{{ var("lake_dir") }}/events/*/*.parquet')
{%- endmacro %}

{% macro spark__lake_files() -%}
    select _metadata.file_path as file_name, count(*) as num_rows
    from parquet.`{{ var("lake_dir") }}/events`
    group by _metadata.file_path
{%- endmacro %}

{#- The quarantine's rows (reason, source, ingest_date, ingested_at); empty when there are none. -#}
{% macro quarantine_rows() -%}
    {% if var("quarantine_glob") -%}
    {{ return(adapter.dispatch('quarantine_rows', 'cartpulse')()) }}
    {%- else -%}
    select
        cast(null as string) as reason,
        cast(null as string) as source,
        cast(null as date) as ingest_date,
        cast(null as {{ type_timestamp_tz() }}) as ingested_at
    where false
    {%- endif %}
{%- endmacro %}

{% macro default__quarantine_rows() -%}
    select reason, source, ingest_date, ingested_at
    from read_parquet(
        '{{ var("quarantine_glob") }}',
        hive_partitioning = true,
        hive_types = {'ingest_date': date}
    )
{%- endmacro %}

{% macro spark__quarantine_rows() -%}
    select reason, source, ingest_date, ingested_at
    from parquet.`{{ var("quarantine_glob") | replace("/*/*.parquet", "") }}`
{%- endmacro %}

{#- The stream engine's bot alerts (user_id, detected_at, rule): the table main.bot_alerts in
    DuckDB; on Spark the Parquet copy the runner exports (var bot_alerts_path). Empty when
    there are none yet. -#}
{% macro bot_alert_rows() -%}
    {{ return(adapter.dispatch('bot_alert_rows', 'cartpulse')()) }}
{%- endmacro %}

{% macro default__bot_alert_rows() -%}
    {%- set bot_alerts = adapter.get_relation(
            database=target.database, schema=target.schema, identifier='bot_alerts') -%}
    {% if bot_alerts is not none -%}
    select user_id, detected_at, rule from {{ bot_alerts }}
    {%- else -%}
    {{ no_bot_alerts() }}
    {%- endif %}
{%- endmacro %}

{% macro spark__bot_alert_rows() -%}
    {% if var("bot_alerts_path", "") -%}
    select user_id, detected_at, rule from parquet.`{{ var("bot_alerts_path") }}`
    {%- else -%}
    {{ no_bot_alerts() }}
    {%- endif %}
{%- endmacro %}

{% macro no_bot_alerts() -%}
    select
        cast(null as bigint) as user_id,
        cast(null as {{ type_timestamp_tz() }}) as detected_at,
        cast(null as string) as rule
    where false
{%- endmacro %}

{#- The type of an instant (DuckDB: timestamptz; Spark's timestamp is one). -#}
{% macro type_timestamp_tz() -%}
    {{ return(adapter.dispatch('type_timestamp_tz', 'cartpulse')()) }}
{%- endmacro %}

{% macro default__type_timestamp_tz() %}timestamptz{% endmacro %}

{% macro spark__type_timestamp_tz() %}timestamp{% endmacro %}

{#- Microseconds since 1970-01-01 UTC of an instant. -#}
{% macro epoch_us(ts) -%}
    {{ return(adapter.dispatch('epoch_us', 'cartpulse')(ts)) }}
{%- endmacro %}

{% macro default__epoch_us(ts) %}epoch_us({{ ts }}){% endmacro %}

{% macro spark__epoch_us(ts) %}unix_micros({{ ts }}){% endmacro %}

{#- Hour of day (0-23), ISO weekday (1 = Monday … 7) and date of an instant in UTC. Spark reads
    them in the session time zone, which the profile sets to UTC. -#}
{% macro utc_hour(ts) -%}
    {{ return(adapter.dispatch('utc_hour', 'cartpulse')(ts)) }}
{%- endmacro %}

{% macro default__utc_hour(ts) %}hour(timezone('UTC', {{ ts }}))::integer{% endmacro %}

{% macro spark__utc_hour(ts) %}hour({{ ts }}){% endmacro %}

{% macro utc_isodow(ts) -%}
    {{ return(adapter.dispatch('utc_isodow', 'cartpulse')(ts)) }}
{%- endmacro %}

{% macro default__utc_isodow(ts) %}isodow(timezone('UTC', {{ ts }}))::integer{% endmacro %}

{% macro spark__utc_isodow(ts) %}extract(dayofweek_iso from {{ ts }}){% endmacro %}

{% macro utc_date(ts) -%}
    {{ return(adapter.dispatch('utc_date', 'cartpulse')(ts)) }}
{%- endmacro %}

{% macro default__utc_date(ts) %}timezone('UTC', {{ ts }})::date{% endmacro %}

{% macro spark__utc_date(ts) %}to_date({{ ts }}){% endmacro %}

{#- A 64-bit hash of a value (grouping key; assert_session_keys_unique checks collisions). -#}
{% macro hash64(expr) -%}
    {{ return(adapter.dispatch('hash64', 'cartpulse')(expr)) }}
{%- endmacro %}

{% macro default__hash64(expr) %}hash({{ expr }}){% endmacro %}

{% macro spark__hash64(expr) %}xxhash64({{ expr }}){% endmacro %}

{#- Aggregate: a hash of the sorted values of `column` (0 when there are none). -#}
{% macro sorted_values_hash(column) -%}
    {{ return(adapter.dispatch('sorted_values_hash', 'cartpulse')(column)) }}
{%- endmacro %}

{% macro default__sorted_values_hash(column) -%}
    coalesce(hash(list({{ column }} order by {{ column }})), 0)
{%- endmacro %}

{% macro spark__sorted_values_hash(column) -%}
    coalesce(xxhash64(sort_array(collect_list({{ column }}))), 0)
{%- endmacro %}

{#- Aggregate: `value` of the row with the largest `order_by`; on a tie a known value before a
    null (the engines order nulls inside structs differently), then the largest. -#}
{% macro value_at_max(value, order_by) -%}
    {{ return(adapter.dispatch('value_at_max', 'cartpulse')(value, order_by)) }}
{%- endmacro %}

{% macro default__value_at_max(value, order_by) -%}
    max(struct_pack(t := {{ order_by }}, k := {{ value }} is not null, v := {{ value }})).v
{%- endmacro %}

{% macro spark__value_at_max(value, order_by) -%}
    max(named_struct('t', {{ order_by }}, 'k', {{ value }} is not null, 'v', {{ value }})).v
{%- endmacro %}

{#- Aggregate: the distinct values of a text column, sorted, joined with commas. -#}
{% macro sorted_distinct_list(column) -%}
    {{ return(adapter.dispatch('sorted_distinct_list', 'cartpulse')(column)) }}
{%- endmacro %}

{% macro default__sorted_distinct_list(column) -%}
    string_agg(distinct {{ column }}, ',' order by {{ column }})
{%- endmacro %}

{% macro spark__sorted_distinct_list(column) -%}
    array_join(sort_array(collect_set({{ column }})), ',')
{%- endmacro %}

{#- Config of the incremental models: Spark tables are partitioned by event_date, so that a
    build overwrites just the partitions it recomputed; DuckDB tables are not partitioned. -#}
{% macro event_date_partitions() -%}
    {{ return(['event_date'] if target.type == 'spark' else none) }}
{%- endmacro %}
