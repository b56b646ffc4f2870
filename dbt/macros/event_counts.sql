{#- Events per type and the revenue of purchases, as aggregate columns named views, carts,
    removes, purchases and revenue_amount (currency). `kinds` picks the counts. -#}
{% macro event_counts(kinds=['views', 'carts', 'removes', 'purchases']) -%}
    {%- set event_types = {'views': 'view', 'carts': 'cart', 'removes': 'remove_from_cart',
                           'purchases': 'purchase'} -%}
    {%- for kind in kinds %}
    count(*) filter (where event_type = '{{ event_types[kind] }}') as {{ kind }},
    {%- endfor %}
    coalesce({{ exact_sum('price', "event_type = 'purchase'") }}, 0) as revenue_amount
{%- endmacro %}

{#- Roll counts up a level: sum(column) for each column, counts kept as bigint, amounts summed
    exactly. -#}
{% macro summed(columns) -%}
    {%- for column in columns %}
    {{ exact_sum(column) if column.endswith('_amount') else 'sum(' ~ column ~ ')::bigint' }} as {{ column }}
    {{- ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- Aggregate: the sum of a money column (over the rows where `where` holds, if given), exact
    to 6 decimals whatever the order of the rows (as the stream engine sums), as a double.
    Both engines then rank equal sums as ties; a float sum's last bit depends on the order
    each engine adds in. -#}
{% macro exact_sum(column, where=none) -%}
    cast(sum(cast({{ column }} as decimal(38, 6)))
        {%- if where %} filter (where {{ where }}){% endif %} as double)
{%- endmacro %}
