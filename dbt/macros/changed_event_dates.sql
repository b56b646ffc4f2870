{#- The event_date partitions an incremental model must (re)build: all of them on a full build;
    afterwards only those whose lake fingerprint (files, rows, bot list) changed since the
    model last built them. Lake files are written once and never modified, so a partition
    that gained a file, or a change of the bot list, is always seen. -#}
{% macro changed_event_dates() -%}
    select p.event_date, p.lake_fingerprint
    from {{ ref('int_lake_partitions') }} as p
    {% if is_incremental() -%}
    anti join (select distinct event_date, lake_fingerprint from {{ this }}) as built
        using (event_date, lake_fingerprint)
    {%- endif %}
{%- endmacro %}

{#- The counted events (int_events) of the partitions to (re)build. -#}
{% macro changed_partition_events() -%}
    select events.*
    from {{ ref('int_events') }} as events
    semi join ({{ changed_event_dates() }}) as partitions using (event_date)
{%- endmacro %}

{#- Rows of `cte` (one event_date each) with the fingerprint of their partition, joined after
    aggregating so that no text column rides along with every event. -#}
{% macro with_lake_fingerprint(cte) -%}
    select {{ cte }}.*, partitions.lake_fingerprint
    from {{ cte }}
    join {{ ref('int_lake_partitions') }} as partitions using (event_date)
{%- endmacro %}
